// go_echo: the perf harness's Go peer, the echo server a Go programmer writes with the standard
// library: a goroutine per connection, a blocking read/write loop, Go's netpoller underneath.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Each connection owns its buffer (Go has no shared one); 16 KiB holds a pipelined burst of
// small messages without costing an idle connection much.
const bufferSize = 16 * 1024

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go_echo: "+format+"\n", args...)
	os.Exit(1)
}

// parseListen turns tcp://HOST:PORT (HOST an IPv4 or IPv6 literal, IPv6 in brackets) into
// what net.Listen takes.
func parseListen(url string) string {
	if !strings.HasPrefix(url, "tcp://") {
		fail("--listen: expected tcp://HOST:PORT, got %s", url)
	}
	hostport := strings.TrimPrefix(url, "tcp://")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		fail("--listen: %v", err)
	}
	if net.ParseIP(host) == nil {
		fail("--listen: '%s' is not an IPv4 or IPv6 literal", host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		fail("--listen: bad port in %s", url)
	}
	return net.JoinHostPort(host, port)
}

// echo writes back everything it reads. Write returns only once all of it is sent, and the
// next Read waits for that, so a client that does not read stops the server reading from it.
// TCP_NODELAY is Go's default for TCP connections.
func echo(conn net.Conn) {
	defer conn.Close()
	buf := make([]byte, bufferSize)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if _, werr := conn.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a reset
		}
	}
}

func main() {
	listen := flag.String("listen", "", "tcp://HOST:PORT to listen on (port 0: any)")
	loops := flag.Int("loops", 1, "threads running Go code (GOMAXPROCS)")
	flag.Parse()
	if *listen == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: go_echo --listen tcp://HOST:PORT [--loops N]")
		os.Exit(2)
	}
	if *loops < 1 || *loops > 256 {
		fail("--loops: expected 1..256, got %d", *loops)
	}
	runtime.GOMAXPROCS(*loops)

	// Registered before the listener is announced, so a signal sent right after the line is seen.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)

	listener, err := net.Listen("tcp", parseListen(*listen))
	if err != nil {
		fail("listen: %v", err)
	}
	go func() {
		<-signals
		listener.Close() // ends the accept loop below, and with it the process
	}()
	// os.Stdout is unbuffered: the line is out when Printf returns. Addr is the bound address,
	// so a caller that asked for port 0 can connect.
	fmt.Printf("listening on tcp://%s\n", listener.Addr().String())

	for {
		conn, err := listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: keep serving, as Go's http.Server does, after a
			// pause so a persistent error does not spin.
			fmt.Fprintf(os.Stderr, "go_echo: accept: %v\n", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go echo(conn)
	}
}
