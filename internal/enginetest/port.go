package enginetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ports are drawn at random from [portLow, ephemeral low bound): the kernel
// never hands these out to outgoing connections, so a probed port stays free
// until the engine binds it unless another process picks the same one, which
// the random draw makes rare and startWithRetry repairs.
const portLow = 10000

var ports struct {
	sync.Mutex
	handed map[int]bool // ports handed out by this process, never handed twice
}

// freePorts returns n distinct loopback ports that are free for TCP and UDP.
func freePorts(n int) ([]int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.handed == nil {
		ports.handed = make(map[int]bool)
	}
	lo, hi := portLow, ephemeralLow()
	if hi-lo < 1000 {
		lo, hi = 1025, 1025+5000
	}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			return nil, fmt.Errorf("enginetest: no free loopback port in %d-%d", lo, hi)
		}
		p := lo + rand.IntN(hi-lo)
		if ports.handed[p] || !portFree(p) {
			continue
		}
		ports.handed[p] = true
		out = append(out, p)
	}
	return out, nil
}

func portFree(p int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	_ = u.Close()
	return true
}

// ephemeralLow returns the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	p, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return p
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// errPortTaken marks a start that failed because a port was taken between
// the probe and the engine's bind.
var errPortTaken = errors.New("port taken")

// startWithRetry calls start with fresh ports until it succeeds, fails for a
// reason other than a port race, or has tried three times.
func startWithRetry(start func() (*Process, error)) (*Process, error) {
	var err error
	for range 3 {
		var p *Process
		p, err = start()
		if err == nil {
			return p, nil
		}
		if !errors.Is(err, errPortTaken) {
			return nil, err
		}
	}
	return nil, err
}

// FreeAddr returns a free loopback address ("127.0.0.1:port") for a
// listener a test starts itself (a worker's HTTP or ops address), from the
// same pool as the engines' ports: never one handed out before in this
// process, nor one the kernel gives outgoing connections.
func FreeAddr(t testing.TB) string {
	t.Helper()
	p, err := freePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p[0])
}
