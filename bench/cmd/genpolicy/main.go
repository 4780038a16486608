// Command genpolicy writes configs/bench.toml, the policy `make bench` runs
// tungate with. The nftables variant is rendered from the same rules at run
// time, so the two stay equivalent.
//
//	go run ./bench/cmd/genpolicy -o configs/bench.toml
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/tungate/tungate/bench"
)

func main() {
	out := flag.String("o", "", "output file (default stdout)")
	rules := flag.Int("rules", bench.PolicyRules, "number of rules")
	flag.Parse()
	text := bench.Generate(*rules).TOML()
	if *out == "" {
		fmt.Print(text)
		return
	}
	if err := os.WriteFile(*out, []byte(text), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
