package conntrack

var ctStateNames = [...]string{
	StateNew:         "new",
	StateEstablished: "established",
	StateRelated:     "related",
	StateInvalid:     "invalid",
}

// String returns the name rules and logs use for s.
func (s CtState) String() string {
	if int(s) < len(ctStateNames) {
		return ctStateNames[s]
	}
	return "unknown"
}

func (d Dir) String() string {
	if d == DirReply {
		return "reply"
	}
	return "original"
}
