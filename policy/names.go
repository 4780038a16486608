package policy

import "sync"

// Rule names are interned process-wide so that a rule keeps its ID across
// reloads: logs and the control socket can refer to a rule by ID even when
// the policy that produced the ID has been replaced. The table only grows;
// it is bounded by the number of distinct rule names ever configured.
var ruleNames struct {
	mu   sync.RWMutex // guards ids and byID
	ids  map[string]uint32
	byID []string // byID[id-1] is the name of id
}

// internName returns the stable ID of name, allocating one (from 1) the
// first time name is seen.
func internName(name string) uint32 {
	ruleNames.mu.RLock()
	id, ok := ruleNames.ids[name]
	ruleNames.mu.RUnlock()
	if ok {
		return id
	}
	ruleNames.mu.Lock()
	defer ruleNames.mu.Unlock()
	if id, ok := ruleNames.ids[name]; ok {
		return id
	}
	if ruleNames.ids == nil {
		ruleNames.ids = make(map[string]uint32)
	}
	ruleNames.byID = append(ruleNames.byID, name)
	id = uint32(len(ruleNames.byID))
	ruleNames.ids[name] = id
	return id
}

// lookupName returns the name interned as id, "" for 0 or an unknown ID.
func lookupName(id uint32) string {
	ruleNames.mu.RLock()
	defer ruleNames.mu.RUnlock()
	if id == 0 || int(id) > len(ruleNames.byID) {
		return ""
	}
	return ruleNames.byID[id-1]
}
