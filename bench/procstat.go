package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTick is USER_HZ, the unit of /proc CPU times; 100 on every Linux
// architecture Go supports.
const clockTick = 100

// ProcStat is the part of /proc/PID/stat the harness uses.
type ProcStat struct {
	PID, PPID int
	CPU       float64 // utime+stime, seconds
}

// ParseProcStat parses one /proc/PID/stat line. The command name is in
// parentheses and may itself hold spaces and parentheses, so the fields are
// counted from the last ')'.
func ParseProcStat(line []byte) (ProcStat, error) {
	open := bytes.IndexByte(line, '(')
	end := bytes.LastIndexByte(line, ')')
	if open < 1 || end < open {
		return ProcStat{}, errors.New("proc stat: no (comm)")
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(line[:open])))
	if err != nil {
		return ProcStat{}, fmt.Errorf("proc stat: pid: %w", err)
	}
	// After ")": state(3) ppid(4) ... utime(14) stime(15).
	f := strings.Fields(string(line[end+1:]))
	if len(f) < 13 {
		return ProcStat{}, errors.New("proc stat: too few fields")
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseUint(f[11], 10, 64)
	st, err3 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return ProcStat{}, fmt.Errorf("proc stat: %w", err)
	}
	return ProcStat{PID: pid, PPID: ppid, CPU: float64(ut+st) / clockTick}, nil
}

// Tree returns /proc stats of pid and every live descendant; descendants
// matter for a PEER command run through a shell.
func Tree(pid int) ([]ProcStat, error) {
	all, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	stats := make(map[int]ProcStat, len(all))
	children := make(map[int][]int)
	for _, p := range all {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		s, err := ParseProcStat(b)
		if err != nil {
			continue
		}
		stats[s.PID] = s
		children[s.PPID] = append(children[s.PPID], s.PID)
	}
	if _, ok := stats[pid]; !ok {
		return nil, fmt.Errorf("process %d is gone", pid)
	}
	var out []ProcStat
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, stats[p])
		queue = append(queue, children[p]...)
	}
	return out, nil
}

// TreeCPU is the CPU seconds used so far by pid and its live descendants.
func TreeCPU(pid int) (float64, error) {
	tree, err := Tree(pid)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, s := range tree {
		sum += s.CPU
	}
	return sum, nil
}

// TreeMemory sums the resident set figures of pid and its descendants.
func TreeMemory(pid int) (Memory, error) {
	tree, err := Tree(pid)
	if err != nil {
		return Memory{}, err
	}
	var sum Memory
	for i, s := range tree {
		m, err := ReadMemory(s.PID)
		if err != nil {
			if i == 0 {
				return Memory{}, err
			}
			continue // a child that just exited
		}
		sum.RSS += m.RSS
		sum.HWM += m.HWM
	}
	return sum, nil
}

// Memory holds a process's resident set figures in bytes.
type Memory struct {
	RSS, HWM int64 // VmRSS now, VmHWM peak
}

// ParseStatus reads VmRSS and VmHWM from /proc/PID/status text.
func ParseStatus(text []byte) (Memory, error) {
	var m Memory
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return Memory{}, fmt.Errorf("proc status: %s: %q", key, val)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return Memory{}, fmt.Errorf("proc status: %s: %q", key, val)
		}
		if key == "VmRSS" {
			m.RSS = kb << 10
		} else {
			m.HWM = kb << 10
		}
		seen++
	}
	if seen < 2 {
		return Memory{}, errors.New("proc status: no VmRSS/VmHWM")
	}
	return m, nil
}

// ReadMemory reads /proc/PID/status.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	return ParseStatus(b)
}

// ParseHostBusy returns the busy CPU seconds, summed over all CPUs, from
// the first line of /proc/stat: everything but idle and iowait. guest time
// is already inside user.
func ParseHostBusy(text []byte) (float64, error) {
	line, _, _ := bytes.Cut(text, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0, errors.New("proc stat: no cpu line")
	}
	var busy uint64
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat: cpu field %d: %w", i+1, err)
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return float64(busy) / clockTick, nil
}

// HostBusy reads ParseHostBusy from /proc/stat.
func HostBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return ParseHostBusy(b)
}
