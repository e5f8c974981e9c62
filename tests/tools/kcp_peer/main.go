// kcp_peer: kcp-go (Debian's golang-github-xtaci-kcp-dev, no FEC, no encryption) as the peer of
// actnet's KCP in the interop tests.
//
//	kcp_peer server --mode fast|normal [--seconds S]
//	    an echo server on 127.0.0.1 (a free port): prints "listening on 127.0.0.1:PORT", echoes
//	    every conversation's bytes, and exits after S seconds (default 120).
//	kcp_peer client --connect HOST:PORT --mode fast|normal --bytes N [--chunk C] [--seconds S]
//	    sends N bytes of the shared pattern in writes of C bytes (default: all at once), reads the
//	    echo while it writes, checks every byte, and prints "ok N bytes"; exits 1 on a wrong
//	    byte or when S seconds (default 60) pass first.
//
// The pattern, byte i: (i*131 + (i>>8)*7) mod 256, as kcp_interop_test.cpp makes it.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/xtaci/kcp-go"
)

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131 + (i>>8)*7)
	}
	return b
}

// The two modes as kcp-go's users set them, both ends with windows of 128 segments.
func tune(s *kcp.UDPSession, mode string) {
	if mode == "fast" {
		s.SetNoDelay(1, 10, 2, 1)
	} else {
		s.SetNoDelay(0, 100, 0, 0)
	}
	s.SetWindowSize(128, 128)
	s.SetMtu(1400)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "kcp_peer: "+format+"\n", args...)
	os.Exit(1)
}

func server(mode string, seconds int) {
	l, err := kcp.ListenWithOptions("127.0.0.1:0", nil, 0, 0)
	if err != nil {
		fail("listen: %v", err)
	}
	fmt.Printf("listening on %s\n", l.Addr())
	os.Stdout.Sync()
	go func() {
		time.Sleep(time.Duration(seconds) * time.Second)
		os.Exit(0)
	}()
	for {
		s, err := l.AcceptKCP()
		if err != nil {
			fail("accept: %v", err)
		}
		tune(s, mode)
		go func(s *kcp.UDPSession) {
			defer s.Close()
			io.Copy(s, s)
		}(s)
	}
}

func client(addr, mode string, n, chunk, seconds int) {
	s, err := kcp.DialWithOptions(addr, nil, 0, 0)
	if err != nil {
		fail("dial: %v", err)
	}
	defer s.Close()
	tune(s, mode)
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	s.SetDeadline(deadline)
	want := pattern(n)
	if chunk <= 0 || chunk > n {
		chunk = n
	}
	go func() {
		for at := 0; at < n; at += chunk {
			end := at + chunk
			if end > n {
				end = n
			}
			if _, err := s.Write(want[at:end]); err != nil {
				fail("write: %v", err)
			}
		}
	}()
	got := make([]byte, n)
	if _, err := io.ReadFull(s, got); err != nil {
		fail("read after %v: %v", time.Until(deadline), err)
	}
	for i := range got {
		if got[i] != want[i] {
			fail("byte %d is %d, not %d", i, got[i], want[i])
		}
	}
	fmt.Printf("ok %d bytes\n", n)
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: kcp_peer server|client [flags]")
	}
	flags := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	mode := flags.String("mode", "normal", "fast or normal")
	connect := flags.String("connect", "", "the server (client)")
	n := flags.Int("bytes", 1<<20, "bytes to send (client)")
	chunk := flags.Int("chunk", 0, "bytes a write (client; 0: all at once)")
	seconds := flags.Int("seconds", 0, "time limit")
	flags.Parse(os.Args[2:])
	switch os.Args[1] {
	case "server":
		if *seconds == 0 {
			*seconds = 120
		}
		server(*mode, *seconds)
	case "client":
		if *seconds == 0 {
			*seconds = 60
		}
		client(*connect, *mode, *n, *chunk, *seconds)
	default:
		fail("unknown command %q", os.Args[1])
	}
}
