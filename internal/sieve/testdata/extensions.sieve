require ["variables", "imap4flags", "fileinto", "mailbox", "copy", "body", "relational",
         "comparator-i;ascii-numeric", "date", "index", "regex", "editheader", "vacation",
         "duplicate", "include", "subaddress", "envelope", "reject", "encoded-character", "special-use"];
set :lower "who" "${hex:41}lice";
if envelope :detail "to" "lists" { fileinto :create :flags "\\Seen" "Lists/${who}"; }
if header :regex "subject" "^\\[(.*)\\]" { addflag "${1}"; }
if body :content "text" :contains "unsubscribe" { fileinto :copy :specialuse "\\Junk" "Junk"; }
if date :value "ge" :zone "+0100" "date" "hour" "17" { addheader :last "X-Late" "yes"; }
if header :count "gt" :comparator "i;ascii-numeric" "received" "10" { reject text:
too many hops
.
; }
if duplicate :seconds 3600 { discard; stop; }
include :optional :once "b";
vacation :days 3 :subject "away" "I am away";
