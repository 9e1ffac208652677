package server

// BodyBuffersInUse is how many connections hold a body buffer (tests).
func BodyBuffersInUse() int { return len(bodySlots) }
