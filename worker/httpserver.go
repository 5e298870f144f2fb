package worker

import (
	"net/http"

	"couponpush/config"
)

// newHTTPServer is the api role's server with cfg's connection bounds: a
// client that sends its headers or body too slowly, or takes too long to
// read the answer, is cut off; idle keep-alive connections are closed.
// WriteTimeout exceeds the request deadline (config validates it), so a
// request cut short by its deadline still gets its 503.
func newHTTPServer(cfg config.Worker, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.HTTPReadHeaderTimeout.Duration(),
		ReadTimeout:       cfg.HTTPReadTimeout.Duration(),
		WriteTimeout:      cfg.HTTPWriteTimeout.Duration(),
		IdleTimeout:       cfg.HTTPIdleTimeout.Duration(),
		MaxHeaderBytes:    cfg.HTTPMaxHeaderBytes,
	}
}
