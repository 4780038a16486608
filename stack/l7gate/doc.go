// Package l7gate serves the terminated flows whose decision needs their
// byte stream: a TCP flow pending on tls.sni or http.* (read the client's
// first bytes, resume the rules, then dial and replay, or refuse without
// ever reaching the server), the HTTP gate that cuts a refused later
// request out of a kept-alive connection, DNS flows decided query by query
// (UDP and TCP), and the inspection of an allowed flow's armed payload
// rules. It also holds the client side of every relayed TCP flow
// (ClientConn), whose refusal is a reset or a 403 answer.
//
// Every decision it reaches goes to the verdict Applier; it never counts,
// logs or caches a verdict itself. It knows nothing of packets, the filter
// hook or the gVisor stack beyond the client's endpoint.
package l7gate
