package fleet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/beckmanconnect/bcupdate/fleet/wire"
	"github.com/beckmanconnect/bcupdate/internal/netaddr"
)

// ServeOptions configure Serve.
type ServeOptions struct {
	Addr            string // HOST:PORT; plain http only on loopback
	TLSCert, TLSKey string
	Log             *slog.Logger
	// Ready, if set, is called with the base URL once listening.
	Ready func(url string)
	// People, if set, is the people's API (OIDC), mounted at /api/.
	People http.Handler
	// Web, if set, is the dashboard (fleet/web), mounted at / beside
	// the APIs.
	Web http.Handler
}

// Metrics are the service's Prometheus metrics (/metrics).
type Metrics struct {
	Registry *prometheus.Registry
	received *prometheus.CounterVec
	rejected *prometheus.CounterVec
	enrolled prometheus.Counter
	latency  *prometheus.HistogramVec
	store    *prometheus.HistogramVec
}

// NewMetrics registers the service's metrics; online counts the devices
// online now (called at most every 15 s, at scrape time).
func NewMetrics(online func() (int, error)) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bcfleet_reports_received_total",
			Help: "Device reports accepted, by kind (full or heartbeat)."}, []string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bcfleet_requests_rejected_total",
			Help: "Device requests refused, by reason."}, []string{"reason"}),
		enrolled: prometheus.NewCounter(prometheus.CounterOpts{Name: "bcfleet_devices_enrolled_total",
			Help: "Devices enrolled since start."}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bcfleet_request_seconds",
			Help: "Time to answer a device request, store included.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"path"}),
	}
	m.store = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bcfleet_store_seconds",
		Help: "Time the store takes for the device API's calls, by operation.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}, []string{"op"})
	var mu sync.Mutex
	var last time.Time
	var count float64
	onlineGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "bcfleet_devices_online",
		Help: "Devices whose last report is younger than three of their poll intervals."}, func() float64 {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) > 15*time.Second && online != nil {
			if n, err := online(); err == nil {
				count, last = float64(n), time.Now()
			}
		}
		return count
	})
	m.Registry.MustRegister(m.received, m.rejected, m.enrolled, m.latency, m.store, onlineGauge)
	return m
}

// Instrument hooks s's counters to m and times h's requests.
func (m *Metrics) Instrument(s *Server, h http.Handler) http.Handler {
	s.Rejected = func(reason string) { m.rejected.WithLabelValues(reason).Inc() }
	s.Accepted = func(heartbeat bool) {
		kind := "full"
		if heartbeat {
			kind = "heartbeat"
		}
		m.received.WithLabelValues(kind).Inc()
	}
	s.Enrolled = func() { m.enrolled.Inc() }
	s.Store = timedStore{Store: s.Store, h: m.store}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		path := r.URL.Path // a bounded label: anything else is "other"
		if path != wire.EnrollPath && path != wire.ReportPath && path != wire.RotatePath {
			path = "other"
		}
		m.latency.WithLabelValues(path).Observe(time.Since(start).Seconds())
	})
}

// timedStore times the store calls of the device API.
type timedStore struct {
	Store
	h *prometheus.HistogramVec
}

func (t timedStore) observe(op string, start time.Time) {
	t.h.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (t timedStore) Device(ctx context.Context, id string) (*Device, error) {
	defer t.observe("device", time.Now())
	return t.Store.Device(ctx, id)
}

func (t timedStore) DeviceAuth(ctx context.Context, id string) (*Device, error) {
	defer t.observe("device_auth", time.Now())
	return t.Store.DeviceAuth(ctx, id)
}

func (t timedStore) SaveReport(ctx context.Context, id string, u ReportUpdate) error {
	defer t.observe("save_report", time.Now())
	return t.Store.SaveReport(ctx, id, u)
}

func (t timedStore) UseToken(ctx context.Context, hash []byte, now time.Time) (*Token, error) {
	defer t.observe("use_token", time.Now())
	return t.Store.UseToken(ctx, hash, now)
}

func (t timedStore) Enroll(ctx context.Context, tokenHash []byte, now time.Time, d Device, replacesKey []byte) (*Token, error) {
	defer t.observe("enroll", time.Now())
	return t.Store.Enroll(ctx, tokenHash, now, d, replacesKey)
}

func (t timedStore) AddDevice(ctx context.Context, d Device) error {
	defer t.observe("add_device", time.Now())
	return t.Store.AddDevice(ctx, d)
}

// OnlineCount counts the devices online now.
func OnlineCount(ctx context.Context, st Store) (int, error) {
	// Counted in the store (the narrow device_seen table), not by
	// reading every device at each scrape.
	p, err := st.DevicePage(ctx, DeviceQuery{Presence: PresenceOnline, Now: time.Now(), Limit: 1})
	if err != nil {
		return 0, err
	}
	return p.Total, nil
}

// Serve serves the device API, /metrics and (when set) the people's API
// and the dashboard until ctx is cancelled.
func Serve(ctx context.Context, s *Server, m *Metrics, o ServeOptions) error {
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errUsage("--tls-cert and --tls-key go together")
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return errUsage("--addr %s: want HOST:PORT, such as 127.0.0.1:8443", o.Addr)
	}
	if o.TLSCert == "" && !netaddr.IsLoopback(host) {
		return errUsage("--addr %s: plain http is served only on loopback (devices send their enrollment over it); give --tls-cert and --tls-key, or a 127.0.0.1 address behind a TLS proxy", o.Addr)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", m.Instrument(s, s.Handler()))
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	if o.People != nil {
		if p, ok := o.People.(*People); ok && p.o.Rejected == nil {
			p.o.Rejected = func(reason string) { m.rejected.WithLabelValues(reason).Inc() }
		}
		mux.Handle("/api/", o.People)
	}
	if o.Web != nil {
		mux.Handle("/", o.Web)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 90 * time.Second, MaxHeaderBytes: 16 << 10}
	if o.Log != nil {
		srv.ErrorLog = slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn)
	}
	scheme := "http"
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return errUsage("--tls-cert %s and --tls-key %s are not a PEM certificate (chain) and its private key: %v", o.TLSCert, o.TLSKey, err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		scheme = "https"
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("--addr %s: cannot listen (%w); give a free port, or port 0 for any", o.Addr, err)
	}
	if srv.TLSConfig != nil {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	if o.Ready != nil {
		o.Ready(scheme + "://" + ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
