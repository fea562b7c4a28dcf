// bench-goplugin measures HashiCorp go-plugin in gRPC mode, as the anchor
// for Outboard's benchmarks: a Go host calling a no-op method of a Go
// plugin over go-plugin's Unix socket.
//
// The same binary is both sides: started by go-plugin (its magic cookie in
// the environment) it serves the plugin; otherwise it is the host: it starts
// the plugin and measures what the Rust harness asks for on stdin (see
// serve), so that the harness can interleave go-plugin with Outboard and the
// floors under the same load.
//
// The plugin's service is written by hand (a grpc.ServiceDesc over
// well-known types), so the module needs no generated code: the request is
// a google.protobuf.Struct carrying the same small context Outboard's
// benchmark sends, the reply a google.protobuf.Empty.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "OUTBOARD_BENCH_GOPLUGIN",
	MagicCookieValue: "noop",
}

const invokeMethod = "/bench.Noop/Invoke"

// noopServer is the plugin's service: one method that does nothing.
type noopServer interface {
	Invoke(context.Context, *structpb.Struct) (*emptypb.Empty, error)
}

type noop struct{}

func (noop) Invoke(context.Context, *structpb.Struct) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func invokeHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(structpb.Struct)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(noopServer).Invoke(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: invokeMethod}
	handler := func(ctx context.Context, req any) (any, error) {
		return srv.(noopServer).Invoke(ctx, req.(*structpb.Struct))
	}
	return interceptor(ctx, in, info, handler)
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: "bench.Noop",
	HandlerType: (*noopServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Invoke", Handler: invokeHandler}},
	Streams:     []grpc.StreamDesc{},
	Metadata:    "bench-goplugin",
}

// noopPlugin is the go-plugin glue, gRPC only.
type noopPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

func (noopPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	s.RegisterService(&serviceDesc, noop{})
	return nil
}

func (noopPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &noopClient{conn: c}, nil
}

// noopClient is what the host gets from Dispense.
type noopClient struct {
	conn *grpc.ClientConn
}

func (c *noopClient) Invoke(ctx context.Context, req *structpb.Struct) error {
	return c.conn.Invoke(ctx, invokeMethod, req, new(emptypb.Empty))
}

var plugins = map[string]plugin.Plugin{"noop": noopPlugin{}}

func main() {
	if os.Getenv(handshake.MagicCookieKey) == handshake.MagicCookieValue {
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: handshake,
			Plugins:         plugins,
			GRPCServer:      plugin.DefaultGRPCServer,
			Logger:          hclog.NewNullLogger(),
		})
		return
	}
	if err := serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-goplugin:", err)
		os.Exit(1)
	}
}

// serve starts one plugin and answers the harness's requests, one per
// line, until stdin ends; each answer is one line of JSON:
//
//	info              {"go_version": "...", "go_plugin_version": "...",
//	                   "host_rss_idle_kib": KiB before any plugin started}
//	latency N         [ns, ...]  N calls, one at a time, each timed
//	throughput C MS   calls/s    C concurrent callers for MS ms
//	cold N            [ns, ...]  N cold starts of another instance
//	rss               KiB        the plugin's VmRSS
//	many N SETTLE_MS  {"ready_ns": spawn of N plugins at once to the last
//	                   first call answered, "host_rss_kib": this host's
//	                   VmRSS SETTLE_MS later}; then they are stopped
func serve(in io.Reader, out io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	idle, err := rssKiB(os.Getpid())
	if err != nil {
		return err
	}
	defer plugin.CleanupClients()
	client, c, err := start(self)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer client.Kill()
	req := smallContext()
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		fields := strings.Fields(lines.Text())
		if len(fields) == 0 {
			continue
		}
		arg := func(i int) (int, error) {
			if len(fields) <= i {
				return 0, fmt.Errorf("%s: argument %d is missing", fields[0], i)
			}
			return strconv.Atoi(fields[i])
		}
		var answer any
		switch fields[0] {
		case "info":
			answer = map[string]any{
				"go_version":        runtime.Version(),
				"go_plugin_version": goPluginVersion(),
				"host_rss_idle_kib": idle,
			}
		case "latency":
			n, err := arg(1)
			if err != nil {
				return err
			}
			samples := make([]int64, 0, n)
			for range n {
				began := time.Now()
				if err := c.Invoke(context.Background(), req); err != nil {
					return err
				}
				samples = append(samples, time.Since(began).Nanoseconds())
			}
			answer = samples
		case "throughput":
			n, err := arg(1)
			if err != nil {
				return err
			}
			millis, err := arg(2)
			if err != nil {
				return err
			}
			rate, err := throughput(c, req, n, time.Duration(millis)*time.Millisecond)
			if err != nil {
				return err
			}
			answer = rate
		case "cold":
			n, err := arg(1)
			if err != nil {
				return err
			}
			samples := make([]int64, 0, n)
			for range n {
				began := time.Now()
				other, _, err := start(self)
				if err != nil {
					return fmt.Errorf("cold start: %w", err)
				}
				samples = append(samples, time.Since(began).Nanoseconds())
				other.Kill()
			}
			answer = samples
		case "many":
			n, err := arg(1)
			if err != nil {
				return err
			}
			settle, err := arg(2)
			if err != nil {
				return err
			}
			answer, err = many(self, n, time.Duration(settle)*time.Millisecond)
			if err != nil {
				return err
			}
		case "rss":
			rss, err := rssKiB(client.ReattachConfig().Pid)
			if err != nil {
				return err
			}
			answer = rss
		default:
			return fmt.Errorf("unknown request %q", fields[0])
		}
		line, err := json.Marshal(answer)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(out, "%s\n", line); err != nil {
			return err
		}
	}
	return lines.Err()
}

// start launches the plugin and returns it once a first call succeeded.
func start(self string) (*plugin.Client, *noopClient, error) {
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          plugins,
		Cmd:              exec.Command(self),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.NewNullLogger(),
	})
	protocol, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, nil, err
	}
	raw, err := protocol.Dispense("noop")
	if err != nil {
		client.Kill()
		return nil, nil, err
	}
	c := raw.(*noopClient)
	if err := c.Invoke(context.Background(), smallContext()); err != nil {
		client.Kill()
		return nil, nil, err
	}
	return client, c, nil
}

// smallContext is the context Outboard's benchmark sends.
func smallContext() *structpb.Struct {
	s, err := structpb.NewStruct(map[string]any{
		"job_id": "bench-0001",
		"env":    map[string]any{"CI": "true", "USER": "bench"},
	})
	if err != nil {
		panic(err)
	}
	return s
}

// many starts n plugins at once and times them until every one has answered
// its first call; then it reads this host's RSS and stops them.
func many(self string, n int, settle time.Duration) (map[string]int64, error) {
	clients := make([]*plugin.Client, n)
	failures := make([]error, n)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			clients[i], _, failures[i] = start(self)
		}()
	}
	wg.Wait()
	ready := time.Since(began)
	defer func() {
		var stopping sync.WaitGroup
		for _, c := range clients {
			if c != nil {
				stopping.Add(1)
				go func() {
					defer stopping.Done()
					c.Kill()
				}()
			}
		}
		stopping.Wait()
	}()
	if err := errors.Join(failures...); err != nil {
		return nil, fmt.Errorf("starting %d plugins: %w", n, err)
	}
	time.Sleep(settle)
	rss, err := rssKiB(os.Getpid())
	if err != nil {
		return nil, err
	}
	return map[string]int64{"ready_ns": ready.Nanoseconds(), "host_rss_kib": rss}, nil
}

func throughput(c *noopClient, req *structpb.Struct, n int, duration time.Duration) (float64, error) {
	var done atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	stop := time.Now().Add(duration)
	began := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := c.Invoke(context.Background(), req); err != nil {
					failed.Store(err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return 0, err
	}
	return float64(done.Load()) / time.Since(began).Seconds(), nil
}

func rssKiB(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// goPluginVersion is the go-plugin module version this binary was built with.
func goPluginVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == "github.com/hashicorp/go-plugin" {
			return dep.Version
		}
	}
	return "unknown"
}
