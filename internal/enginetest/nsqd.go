package enginetest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var sharedNSQD once[[2]string]

// NSQD returns the TCP and HTTP addresses of the shared nsqd
// (COUPONPUSH_NSQD_TCP and COUPONPUSH_NSQD_HTTP if both are set, or one
// started once per test binary). Tests use topics named with Prefix.
func NSQD(t testing.TB) (tcpAddr, httpAddr string) {
	t.Helper()
	tcp, web := os.Getenv("COUPONPUSH_NSQD_TCP"), os.Getenv("COUPONPUSH_NSQD_HTTP")
	if tcp != "" && web != "" {
		return tcp, web
	}
	if tcp != "" || web != "" {
		t.Fatal("enginetest: set both COUPONPUSH_NSQD_TCP and COUPONPUSH_NSQD_HTTP, or neither")
	}
	a, err := sharedNSQD.get(func() ([2]string, error) {
		p, err := startShared(t, "nsqd", nsqdProcess)
		if err != nil {
			return [2]string{}, err
		}
		return [2]string{p.Addr, p.HTTPAddr}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return a[0], a[1]
}

// StartNSQD starts an nsqd for this test only, stopped at t.Cleanup. Addr
// is its TCP address and HTTPAddr its HTTP address. Its messages are kept in
// its data directory across Stop and Restart (nsqd writes its in-memory
// queues to disk on SIGTERM; Kill loses them).
func StartNSQD(t testing.TB) *Process {
	t.Helper()
	return startPerTest(t, "nsqd", nsqdProcess)
}

// StartNSQDArgs is StartNSQD with extra nsqd flags, for example
// "--max-msg-size=4096" to make large messages unpublishable.
func StartNSQDArgs(t testing.TB, args ...string) *Process {
	t.Helper()
	return startPerTest(t, "nsqd", func(dir string) (*Process, error) { return nsqdProcessArgs(dir, args) })
}

func nsqdProcess(dir string) (*Process, error) { return nsqdProcessArgs(dir, nil) }

func nsqdProcessArgs(dir string, extra []string) (*Process, error) {
	path, err := binPath("nsqd")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	tcp, web := loopback(ports[0]), loopback(ports[1])
	p := &Process{
		Name:     "nsqd",
		Addr:     tcp,
		HTTPAddr: web,
		Dir:      dir,
		LogPath:  filepath.Join(dir, "nsqd.log"),
		path:     path,
		args: []string{
			"--tcp-address=" + tcp, "--http-address=" + web,
			"--broadcast-address=127.0.0.1", "--data-path=" + dir,
		},
		ready:        func(ctx context.Context) error { return httpWant(ctx, "http://"+web+"/ping", "OK") },
		readyTimeout: 20 * time.Second,
	}
	p.args = append(p.args, extra...)
	return p, p.start()
}

// httpWant GETs url and wants status 200 and, if want is not empty, that
// body. It keeps no idle connection, so no transport goroutine outlives it.
func httpWant(ctx context.Context, url, want string) error {
	_, err := httpGet(ctx, url, want)
	return err
}

func httpGet(ctx context.Context, url, want string) (string, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	body := strings.TrimSpace(string(b))
	if resp.StatusCode != http.StatusOK || (want != "" && body != want) {
		return "", fmt.Errorf("GET %s: %s %q", url, resp.Status, body)
	}
	return body, nil
}
