package httpapi

import (
	"net/http"
	"net/netip"
	"strings"
)

// clientIP is the address a request comes from, for the abuse limits: the
// TCP peer, or, when the peer is one of the trusted proxies, the
// right-most address of X-Forwarded-For that is not (each trusted proxy
// appends the address it was reached from, so the addresses right of the
// first untrusted one are the proxies' own, and everything left of it is
// the client's word). If the header runs out or holds garbage first, the
// last trusted hop is the client. An unparsable peer gives the zero Addr
// (no IP limit applies).
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	client := ap.Addr().Unmap().WithZone("")
	if !inPrefixes(client, trusted) {
		return client
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, ok := parseHop(hops[i])
		if !ok {
			break
		}
		client = hop
		if !inPrefixes(hop, trusted) {
			break
		}
	}
	return client
}

// parseHop parses one X-Forwarded-For entry: an address, or an address
// with a port as some proxies write it.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
