package bench

import (
	"encoding/json"
	"errors"
	"fmt"
)

// IperfResult is what the harness takes from one `iperf3 -J` client run.
type IperfResult struct {
	Seconds       float64 // as measured by the receiver
	BitsPerSecond float64 // received
	// UDP only: datagrams sent and lost as counted by the receiver.
	Packets, Lost int64
	LostPercent   float64
}

// DeliveredPPS is the datagrams per second that reached the receiver.
func (r IperfResult) DeliveredPPS() float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Packets-r.Lost) / r.Seconds
}

type iperfSum struct {
	Seconds       float64 `json:"seconds"`
	BitsPerSecond float64 `json:"bits_per_second"`
	Packets       int64   `json:"packets"`
	LostPackets   int64   `json:"lost_packets"`
	LostPercent   float64 `json:"lost_percent"`
}

// ParseIperf reads the JSON `iperf3 -c ... -J` prints. iperf3 reports
// failures inside the JSON ("error"); those become errors here.
func ParseIperf(data []byte) (IperfResult, error) {
	var doc struct {
		Error string `json:"error"`
		End   struct {
			SumReceived *iperfSum `json:"sum_received"`
			Sum         *iperfSum `json:"sum"`
		} `json:"end"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return IperfResult{}, fmt.Errorf("iperf3 output: %w", err)
	}
	if doc.Error != "" {
		return IperfResult{}, fmt.Errorf("iperf3: %s", doc.Error)
	}
	s := doc.End.SumReceived
	if s == nil {
		// Older iperf3 has only "sum" for UDP.
		s = doc.End.Sum
	}
	if s == nil {
		return IperfResult{}, errors.New("iperf3 output: no end.sum_received")
	}
	if s.Seconds < 0 || s.BitsPerSecond < 0 || s.Packets < 0 || s.LostPackets < 0 || s.LostPackets > s.Packets {
		return IperfResult{}, errors.New("iperf3 output: inconsistent sums")
	}
	return IperfResult{Seconds: s.Seconds, BitsPerSecond: s.BitsPerSecond,
		Packets: s.Packets, Lost: s.LostPackets, LostPercent: s.LostPercent}, nil
}
