// Package l7 extracts the names a policy decides on from the first bytes
// of application protocols: the TLS ClientHello server_name, HTTP/1.x
// request heads (method, path, Host) and DNS queries. Every parser is
// incremental where the protocol streams, bounded in how much it buffers,
// and allocates nothing per message once its buffers have grown. Parsers
// are not safe for concurrent use; keep one per flow direction.
package l7
