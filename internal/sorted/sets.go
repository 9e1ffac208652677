package sorted

// Set operations on ascending slices of UIDs without duplicates, each in
// one pass over both.

// Union returns the values in a or b, ascending, without duplicates.
func Union(a, b []uint32) []uint32 {
	out := make([]uint32, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// Intersect returns the values of a that are in b, in a new slice.
func Intersect(a, b []uint32) []uint32 {
	out := make([]uint32, 0, min(len(a), len(b)))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case b[j] < a[i]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// Remove removes the values in gone from list in place (list's array is
// reused) and returns the shortened list.
func Remove(list, gone []uint32) []uint32 {
	if len(gone) == 0 || len(list) == 0 {
		return list
	}
	out := list[:0]
	j := 0
	for _, u := range list {
		for j < len(gone) && gone[j] < u {
			j++
		}
		if j < len(gone) && gone[j] == u {
			continue
		}
		out = append(out, u)
	}
	return out
}
