package imap

// NumRange is one range of a sequence set. Start and Stop as sent; 0 stands
// for "*" (the largest number in use). Start may exceed Stop ("5:3" equals
// "3:5"); Normalise/Contains handle that.
type NumRange struct {
	Start, Stop uint32
}

// NumSet is a sequence set (message sequence numbers or UIDs, by context).
// Saved marks the SEARCHRES "$" reference (RFC 5182); Ranges is then empty.
type NumSet struct {
	Ranges []NumRange
	Saved  bool
}
