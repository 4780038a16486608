package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
)

// PayloadPatterns is how many literals the armed payload rule of the
// "payload" variant lists.
const PayloadPatterns = 1000

// payloadAnchor is the rule the payload rule goes in front of: the one that
// allows the benchmark's TCP flows.
const payloadAnchor = "[[rule]]\nname     = \"allow-bench-tcp\""

// ArmPayload returns the tungate config cfg with a drop rule of n literal
// payload patterns in front of the rule that allows the benchmark's TCP
// flows, with the same addresses and ports, so the rule is armed on every
// benchmark TCP flow; [inspect] stream_depth = 0 keeps it armed for the
// whole stream instead of the first MiB. No pattern occurs in the
// benchmark's data (iperf3 sends random bytes, the other agents single
// bytes), so every flow ends up allowed by the next rule, after the
// inspector has seen all of it in both directions (dir = "both"; the
// default, to_server, would leave downloads unscanned).
func ArmPayload(cfg string, n int) (string, error) {
	if !strings.Contains(cfg, payloadAnchor) {
		return "", errors.New("bench: config has no allow-bench-tcp rule to arm a payload rule in front of")
	}
	if strings.Contains(cfg, "\n[inspect]") || strings.HasPrefix(cfg, "[inspect]") {
		return "", errors.New("bench: config has an [inspect] section already")
	}
	return "[inspect]\nstream_depth = 0\n\n" +
		strings.Replace(cfg, payloadAnchor, PayloadRule(n)+"\n"+payloadAnchor, 1), nil
}

// PayloadRule renders the payload rule ArmPayload inserts.
func PayloadRule(n int) string {
	r := rand.New(rand.NewPCG(5, uint64(n)))
	var b strings.Builder
	b.WriteString("[[rule]]\nname     = \"bench-payload-armed\"\nproto    = [\"tcp\"]\n")
	fmt.Fprintf(&b, "src      = %s\ndst      = %s\n", quoteList(ClientNets), quoteList(ServerNets))
	fmt.Fprintf(&b, "dst_port = [%d, \"%d-%d\"]\n", PortIperf, PortReqResp, PortHold)
	b.WriteString("action   = \"drop\"\npayload  = [\n")
	// Random letters and digits from the first byte on: patterns sharing a
	// prefix would let a first-byte prefilter skip nearly all of the data,
	// which a real list of 1000 signatures does not.
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	lit := make([]byte, 16)
	for range n {
		for j := range lit {
			lit[j] = alphabet[r.IntN(len(alphabet))]
		}
		fmt.Fprintf(&b, "  { contains = %q, dir = \"both\" },\n", lit)
	}
	b.WriteString("]\n")
	return b.String()
}

func quoteList[T fmt.Stringer](xs []T) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x.String())
	}
	return "[" + strings.Join(q, ", ") + "]"
}
