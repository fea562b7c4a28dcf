// env-guard is an Outboard plugin written straight against
// proto/outboard/v1/plugin.proto and docs/PROTOCOL.md, without an SDK.
//
// It subscribes to pre_validation and vetoes a job whose env lacks a
// required variable or carries a forbidden one.
package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	pb "outboard-go-example/gen/outboardv1"
)

const (
	pluginName    = "env-guard"
	pluginVersion = "0.1.0"
	magicCookie   = "0b7f4a8e-outboard-plugin"
	servicePrefix = "/outboard.v1.PluginService/"
	phase         = "pre_validation"
)

// The protocol versions this plugin speaks.
var myVersions = []uint64{1}

// Debug records too: the host decides what to show (it shows plugins'
// info and above unless run with -v).
var logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))

func main() { os.Exit(run()) }

func run() int {
	// §3: refuse to run by hand, before anything else.
	if os.Getenv("OUTBOARD_MAGIC_COOKIE") != magicCookie {
		fmt.Fprintln(os.Stderr, pluginName+" is an Outboard plugin: it is started by an Outboard host, not run by hand (try `outboard describe -- "+os.Args[0]+"`).")
		return 1
	}

	// §4: negotiate.
	version, err := negotiate(os.Getenv("OUTBOARD_PROTOCOL_VERSIONS"), os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, pluginName+": "+err.Error())
		return 1
	}
	socketPath := os.Getenv("OUTBOARD_SOCKET")
	token := os.Getenv("OUTBOARD_TOKEN")
	if !strings.HasPrefix(socketPath, "/") || token == "" {
		fmt.Fprintln(os.Stderr, pluginName+": OUTBOARD_SOCKET must be an absolute path and OUTBOARD_TOKEN non-empty")
		return 1
	}
	logger = logger.With("instance", os.Getenv("OUTBOARD_PLUGIN_NAME"))

	stop := make(chan time.Duration, 1)
	svc := &service{version: uint32(version), stop: stop}

	server := grpc.NewServer(
		grpc.ChainUnaryInterceptor(authUnary("Bearer "+token)),
		grpc.ChainStreamInterceptor(authStream("Bearer "+token)),
	)
	pb.RegisterPluginServiceServer(server, svc)
	healthSrv := health.NewServer() // "" is SERVING from the start (§10)
	healthSrv.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(server, healthSrv)
	reflection.Register(server)

	// §5: bind, restrict, serve.
	old := syscall.Umask(0o177)
	listener, err := net.Listen("unix", socketPath)
	syscall.Umask(old)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: cannot listen on %s: %v\n", pluginName, socketPath, err)
		return 1
	}
	if err := os.Chmod(socketPath, 0o600); err != nil {
		fmt.Fprintf(os.Stderr, "%s: cannot chmod %s: %v\n", pluginName, socketPath, err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()

	// §12.3: SIGTERM (and SIGINT) mean stop now.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-signals
		logger.Info("stopping on signal", "signal", sig.String())
		select {
		case stop <- 1500 * time.Millisecond:
		default:
		}
	}()

	// §6: announce, then flush (os.Stdout is unbuffered in Go).
	fmt.Fprintf(os.Stdout, "outboard|%d|unix|%s|grpc\n", version, socketPath)
	_ = os.Stdout.Sync()
	logger.Debug("ready", "protocol_version", version)

	var grace time.Duration
	select {
	case grace = <-stop:
	case err := <-served:
		logger.Error("server stopped unexpectedly", "error", fmt.Sprint(err))
		return 1
	}

	// §8.6 / §12: drain within the grace, leaving a margin to exit.
	healthSrv.Shutdown()
	wait := grace - 300*time.Millisecond
	if wait < 0 {
		wait = 0
	}
	done := make(chan struct{})
	go func() { server.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		logger.Warn("in-flight calls did not finish within the grace period; stopping anyway")
		server.Stop()
	}
	_ = os.Remove(socketPath)
	logger.Debug("stopped")
	return 0
}

// negotiate picks the highest protocol version common to the host's list and
// this plugin's.
func negotiate(raw string, lookup func(string) (string, bool)) (uint64, error) {
	if _, ok := lookup("OUTBOARD_PROTOCOL_VERSIONS"); !ok {
		return 0, errors.New("OUTBOARD_PROTOCOL_VERSIONS is not set")
	}
	var host []string
	var best uint64
	for _, entry := range strings.Split(raw, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		n, err := strconv.ParseUint(entry, 10, 32)
		if err != nil || n == 0 || entry[0] == '+' {
			return 0, fmt.Errorf("OUTBOARD_PROTOCOL_VERSIONS=%q is not a list of positive decimal versions", raw)
		}
		host = append(host, entry)
		for _, mine := range myVersions {
			if mine == n && n > best {
				best = n
			}
		}
	}
	if best == 0 {
		var mine []string
		for _, v := range myVersions {
			mine = append(mine, strconv.FormatUint(v, 10))
		}
		return 0, fmt.Errorf("no common Outboard protocol version: the host speaks %s; this plugin speaks %s",
			strings.Join(host, ","), strings.Join(mine, ","))
	}
	return best, nil
}

// §7: the token check on PluginService, before anything else.
func checkToken(ctx context.Context, method, expected string) error {
	if !strings.HasPrefix(method, servicePrefix) {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	values := md.Get("authorization")
	if len(values) != 1 || subtle.ConstantTimeCompare([]byte(values[0]), []byte(expected)) != 1 {
		return status.Error(codes.Unauthenticated, "missing or wrong token")
	}
	return nil
}

func authUnary(expected string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := checkToken(ctx, info.FullMethod, expected); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func authStream(expected string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := checkToken(ss.Context(), info.FullMethod, expected); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

type service struct {
	pb.UnimplementedPluginServiceServer
	version uint32
	stop    chan time.Duration

	mu     sync.RWMutex
	config Config
}

func (s *service) Describe(ctx context.Context, req *pb.DescribeRequest) (*pb.DescribeResponse, error) {
	schema, err := structpb.NewStruct(ConfigSchema())
	if err != nil {
		return nil, status.Errorf(codes.Internal, "cannot build the config schema: %v", err)
	}
	logger.Debug("describe", "host_version", req.GetHostVersion())
	return &pb.DescribeResponse{Manifest: &pb.Manifest{
		Name:            pluginName,
		Version:         pluginVersion,
		ProtocolVersion: s.version,
		Description:     "Vetoes a job whose env lacks a required variable or has a forbidden one",
		Subscriptions:   []*pb.Subscription{{Phase: phase, Priority: 0, Idempotent: true}},
		ConfigSchema:    schema,
	}}, nil
}

func (s *service) Configure(ctx context.Context, req *pb.ConfigureRequest) (*pb.ConfigureResponse, error) {
	cfg, err := ParseConfig(req.GetConfig())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s.mu.Lock()
	s.config = cfg
	s.mu.Unlock()
	logger.Debug("configured", "required", len(cfg.Required), "forbidden", len(cfg.Forbidden))
	return &pb.ConfigureResponse{}, nil
}

func (s *service) Invoke(ctx context.Context, req *pb.InvokeRequest) (*pb.InvokeResponse, error) {
	if err := ctx.Err(); err != nil { // the host has already given up
		return nil, status.FromContextError(err).Err()
	}
	if req.GetPhase() != phase {
		return &pb.InvokeResponse{}, nil
	}
	s.mu.RLock()
	cfg := s.config
	s.mu.RUnlock()
	resp, err := Decide(cfg, req.GetContext())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if resp.GetOutcome() == pb.Outcome_OUTCOME_ABORT {
		logger.Info("veto", "invocation_id", req.GetInvocationId(), "reason", resp.GetMessage())
	}
	return resp, nil
}

func (s *service) Shutdown(ctx context.Context, req *pb.ShutdownRequest) (*pb.ShutdownResponse, error) {
	grace := req.GetGrace().AsDuration()
	logger.Debug("shutdown", "reason", req.GetReason(), "grace_ms", grace.Milliseconds())
	select { // answer first; a second Shutdown is answered like the first
	case s.stop <- grace:
	default:
	}
	return &pb.ShutdownResponse{}, nil
}
