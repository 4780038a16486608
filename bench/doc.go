// Package bench holds the pieces of tungate's benchmark harness that do not
// need a lab: the generator of the benchmark policy (as tungate TOML and as
// an equivalent nftables ruleset), parsers for iperf3 and /proc output,
// percentiles, and the result table. The harness itself is
// bench/cmd/tgbench; `make bench` runs it.
package bench
