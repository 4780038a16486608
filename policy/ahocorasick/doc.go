// Package ahocorasick is a multi-pattern byte-string matcher (an
// Aho-Corasick automaton) for payload inspection. A Matcher is built once
// and is immutable, so any number of flows may scan with it concurrently;
// each flow keeps its own State, which lets a match span Scan calls.
//
// Case folding. Patterns marked nocase fold ASCII letters only. Rather than
// one automaton over both kinds (a subset construction whose size is hard
// to bound when case-sensitive and case-folded patterns overlap), Build
// makes up to two automata: one over raw bytes for the case-sensitive
// patterns and one for the nocase patterns whose byte-class table maps 'A'
// and 'a' to the same class, so folding costs nothing per byte. When both
// kinds exist they step in lockstep and a State packs both positions;
// when only one kind exists, scanning costs one table load per byte.
//
// Tables. Each automaton uses an equivalence-class alphabet (bytes that
// occur in no pattern share one class) and full transition rows for the
// states nearest the root, in breadth-first order, up to a memory budget.
// Deeper states beyond the budget keep only their trie edges plus a
// failure link, so large pattern sets stay compact while the hot, shallow
// states stay one load per byte.
//
// Walking a DFA is a chain of dependent loads, so its speed is the load
// latency. When a buffer is long compared to the longest pattern, Scan
// walks its two halves as two interleaved chains (the second warmed up on
// the bytes just before the middle) so that the loads overlap; see
// automaton.scan.
package ahocorasick
