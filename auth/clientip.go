package auth

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParseTrustedProxies reads a comma-separated list of IP addresses and
// CIDR prefixes (such as "10.0.0.0/8, 192.168.1.7").
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR prefix", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// clientIP is the address of the request's client: the connection's peer,
// unless that peer is a trusted proxy; then it is the right-most address of
// X-Forwarded-For that is not itself a trusted proxy. Only the part of the
// header that trusted proxies appended is believed: anything to the left of
// the first untrusted hop was written by the client and may be forged, so a
// client cannot pick the address its rate limits are counted under.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := parseAddr(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		fields := strings.Split(hops[i], ",")
		for j := len(fields) - 1; j >= 0; j-- {
			a, ok := parseAddr(strings.TrimSpace(fields[j]))
			if !ok {
				// Garbage where a proxy would have written an address:
				// the last good hop is the best we know.
				return client.String()
			}
			client = a
			if !isTrusted(a, trusted) {
				return a.String()
			}
		}
	}
	return client.String()
}

// parseAddr reads "ip", "ip:port" or "[ipv6]:port".
func parseAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// limitKey is the part of the client's address that rate limits count
// under: the whole IPv4 address, but only the /64 prefix of an IPv6 one,
// because a single host is routinely given a whole /64 and could otherwise
// use a fresh address for every attempt.
func (c Client) limitKey() string {
	a, err := netip.ParseAddr(c.IP)
	if err != nil || a.Is4() {
		return c.IP
	}
	p, _ := a.Prefix(64)
	return p.String()
}
