// Command demo creates a coupon template whose reminders fall due soon and
// subscribes a few thousand users to it through the HTTP API, spread over
// the given workers, so `make run` shows pushes arriving. It creates the
// template with the operator token and subscribes each user with a token
// of their own.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "comma-separated worker base URLs")
	users := flag.Int("users", 3000, "users to subscribe")
	in := flag.Duration("in", 45*time.Second, "reminders fall due this long from now")
	opFile := flag.String("operator-token-file", "", "file holding the workers' operator token (empty: auth off)")
	secretFile := flag.String("jwt-secret-file", "", "file holding the workers' HS256 secret, to sign user tokens (empty: auth off)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	tokens, err := readTokens(*opFile, *secretFile)
	if err == nil {
		err = run(ctx, strings.Split(*api, ","), tokens, *users, *in, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
