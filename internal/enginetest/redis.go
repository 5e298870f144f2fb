package enginetest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

var sharedRedis, sharedCluster once[[]string]

// RedisAddr returns the address of a shared redis-server:
// COUPONPUSH_REDIS_ADDR if set, else one started once per test binary on a
// free port (with --save "" --appendonly no).
func RedisAddr(t testing.TB) string {
	t.Helper()
	if a := os.Getenv("COUPONPUSH_REDIS_ADDR"); a != "" {
		return a
	}
	addrs, err := sharedRedis.get(func() ([]string, error) {
		p, err := startShared(t, "redis", func(dir string) (*Process, error) { return redisProcess(dir, false, nil) })
		if err != nil {
			return nil, err
		}
		return []string{p.Addr}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return addrs[0]
}

// Redis returns a go-redis client on the shared server (see RedisAddr),
// closed at t.Cleanup.
func Redis(t testing.TB) redis.UniversalClient {
	t.Helper()
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{RedisAddr(t)}})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// StartRedis starts a redis-server for this test only, stopped at
// t.Cleanup. It runs with --save "" --appendonly no and a data directory of
// its own; args are appended and win, for example "--appendonly", "yes",
// "--appendfsync", "everysec" for a durability test.
func StartRedis(t testing.TB, args ...string) *Process {
	t.Helper()
	return startPerTest(t, "redis", func(dir string) (*Process, error) { return redisProcess(dir, false, args) })
}

// RedisCluster returns the seed addresses of a 3-master Redis Cluster on
// loopback, started once per test binary and shared like RedisAddr's
// server; each master holds a third of the slots and has no replica.
// redis.NewUniversalClient with these addresses makes a cluster client.
func RedisCluster(t testing.TB) []string {
	t.Helper()
	addrs, err := sharedCluster.get(func() ([]string, error) { return startCluster(t) })
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(addrs)
}

// redisProcess starts a redis-server in dir; with cluster it is a cluster
// node with its bus on a second free port.
func redisProcess(dir string, cluster bool, extra []string) (*Process, error) {
	path, err := binPath("redis-server")
	if err != nil {
		return nil, err
	}
	n := 1
	if cluster {
		n = 2
	}
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	addr := loopback(ports[0])
	args := []string{
		"--port", strconv.Itoa(ports[0]), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--daemonize", "no", "--logfile", "", "--maxclients", "10000",
	}
	if cluster {
		args = append(args,
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(ports[1]),
			"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--cluster-node-timeout", "5000", "--cluster-announce-ip", "127.0.0.1")
	}
	p := &Process{
		Name:         "redis-server",
		Addr:         addr,
		Dir:          dir,
		LogPath:      filepath.Join(dir, "redis.log"),
		path:         path,
		args:         append(args, extra...),
		ready:        func(ctx context.Context) error { return redisPing(ctx, addr) },
		readyTimeout: 20 * time.Second,
	}
	return p, p.start()
}

// redisPing sends PING over a raw connection and wants +PONG, or -NOAUTH
// from a server with a password (not, for example, -LOADING while an AOF
// is read back).
func redisPing(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	// A server with a password answers -NOAUTH: it is up.
	if line = strings.TrimSpace(line); line != "+PONG" && !strings.HasPrefix(line, "-NOAUTH") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// startCluster starts three cluster nodes, gives each a third of the slots
// (as redis-cli --cluster create does), joins them, and waits until every
// node sees all slots served.
func startCluster(t testing.TB) ([]string, error) {
	t.Helper()
	t0 := time.Now()
	var addrs []string
	var buses []string
	for range 3 {
		p, err := startShared(t, "redis-cluster", func(dir string) (*Process, error) { return redisProcess(dir, true, nil) })
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, p.Addr)
		buses = append(buses, p.args[slices.Index(p.args, "--cluster-port")+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	clients := make([]*redis.Client, len(addrs))
	for i, a := range addrs {
		clients[i] = redis.NewClient(&redis.Options{Addr: a})
		defer clients[i].Close()
	}
	const slots = 16384
	for i, c := range clients {
		lo, hi := i*slots/len(clients), (i+1)*slots/len(clients)-1
		if err := c.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return nil, fmt.Errorf("enginetest: cluster node %s: SET-CONFIG-EPOCH: %w", addrs[i], err)
		}
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return nil, fmt.Errorf("enginetest: cluster node %s: ADDSLOTSRANGE %d %d: %w", addrs[i], lo, hi, err)
		}
	}
	for i := 1; i < len(addrs); i++ {
		host, port, _ := net.SplitHostPort(addrs[i])
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port, buses[i]).Err(); err != nil {
			return nil, fmt.Errorf("enginetest: cluster node %s: MEET %s: %w", addrs[0], addrs[i], err)
		}
	}
	var last error
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		if last = clusterConverged(ctx, clients); last == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("enginetest: Redis Cluster %v did not converge within 60s: %w", addrs, last)
		case <-time.After(pause):
		}
	}
	t.Logf("enginetest: Redis Cluster %v ready in %v", addrs, time.Since(t0).Round(time.Millisecond))
	return addrs, nil
}

// clusterConverged checks that every node reports the cluster ok, knows all
// nodes and sees one online master with slots per shard.
func clusterConverged(ctx context.Context, clients []*redis.Client) error {
	for _, c := range clients {
		info, err := c.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		for _, want := range []string{
			"cluster_state:ok",
			"cluster_slots_ok:16384",
			"cluster_known_nodes:" + strconv.Itoa(len(clients)),
		} {
			if !strings.Contains(info, want+"\r\n") {
				return fmt.Errorf("node %s: CLUSTER INFO lacks %s", c.Options().Addr, want)
			}
		}
		shards, err := c.ClusterShards(ctx).Result()
		if err != nil {
			return err
		}
		if len(shards) != len(clients) {
			return fmt.Errorf("node %s: CLUSTER SHARDS lists %d shards", c.Options().Addr, len(shards))
		}
		for _, sh := range shards {
			if len(sh.Slots) == 0 || len(sh.Nodes) == 0 || sh.Nodes[0].IP == "" || sh.Nodes[0].Health != "online" {
				return fmt.Errorf("node %s: a shard has no slots or no online master yet: %+v", c.Options().Addr, sh)
			}
		}
	}
	return nil
}
