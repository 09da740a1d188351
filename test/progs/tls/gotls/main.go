// gotls: a crypto/tls server and client exchanging exact byte counts (test/e2e/tls-go.e2e.test.ts).
//
//	gotls server ADDR CERT KEY UP DOWN   accept one connection, read exactly UP bytes, write DOWN bytes, close
//	gotls client ADDR UP DOWN DELAY_MS   wait DELAY_MS, connect, write UP bytes in chunks, read DOWN bytes to EOF
//	gotls pair CERT KEY UP DOWN DELAY_MS both in one process over loopback, one goroutine each
//	gotls bench CERT KEY N SIZE DELAY_MS  in one process: N client Writes of SIZE bytes, each read by the
//	                                     server; prints the nanoseconds per Write+Read (bench/go-tls.bench.ts)
//
// Writes go in chunks of varying sizes so several Write calls (and several Read calls, one TLS
// record each at most) are made. Prints "ok up=N down=M" when the counts are exact.
package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"
)

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gotls: "+format+"\n", args...)
	os.Exit(1)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		die("bad number %q", s)
	}
	return n
}

func writeChunks(c *tls.Conn, total int, fill byte) {
	buf := make([]byte, 20000)
	for i := range buf {
		buf[i] = fill
	}
	sizes := []int{1, 700, 5000, 16384, 20000, 3}
	for i, left := 0, total; left > 0; i++ {
		n := sizes[i%len(sizes)]
		if n > left {
			n = left
		}
		w, err := c.Write(buf[:n])
		if err != nil || w != n {
			die("write %d: %d %v", n, w, err)
		}
		left -= n
	}
}

func server(ln net.Listener, cert tls.Certificate, up, down int, done chan<- struct{}) {
	conn, err := ln.Accept()
	if err != nil {
		die("accept: %v", err)
	}
	c := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{cert}})
	buf := make([]byte, up)
	if _, err := io.ReadFull(c, buf); err != nil {
		die("server read: %v", err)
	}
	writeChunks(c, down, 'd')
	c.Close()
	close(done)
}

func client(addr string, up, down int) {
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		die("dial: %v", err)
	}
	writeChunks(c, up, 'u')
	got, err := io.ReadAll(c)
	if err != nil {
		die("client read: %v", err)
	}
	if len(got) != down {
		die("client got %d bytes, want %d", len(got), down)
	}
	c.Close()
}

func main() {
	if len(os.Args) < 2 {
		die("usage: gotls server|client|pair ...")
	}
	switch os.Args[1] {
	case "server":
		cert, err := tls.LoadX509KeyPair(os.Args[3], os.Args[4])
		if err != nil {
			die("cert: %v", err)
		}
		ln, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			die("listen: %v", err)
		}
		done := make(chan struct{})
		server(ln, cert, atoi(os.Args[5]), atoi(os.Args[6]), done)
		<-done
	case "client":
		time.Sleep(time.Duration(atoi(os.Args[5])) * time.Millisecond)
		client(os.Args[2], atoi(os.Args[3]), atoi(os.Args[4]))
	case "pair":
		cert, err := tls.LoadX509KeyPair(os.Args[2], os.Args[3])
		if err != nil {
			die("cert: %v", err)
		}
		up, down := atoi(os.Args[4]), atoi(os.Args[5])
		time.Sleep(time.Duration(atoi(os.Args[6])) * time.Millisecond)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			die("listen: %v", err)
		}
		done := make(chan struct{})
		go server(ln, cert, up, down, done)
		client(ln.Addr().String(), up, down)
		<-done
	case "bench":
		cert, err := tls.LoadX509KeyPair(os.Args[2], os.Args[3])
		if err != nil {
			die("cert: %v", err)
		}
		n, size := atoi(os.Args[4]), atoi(os.Args[5])
		time.Sleep(time.Duration(atoi(os.Args[6])) * time.Millisecond)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			die("listen: %v", err)
		}
		done := make(chan struct{})
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				die("accept: %v", err)
			}
			c := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{cert}})
			buf := make([]byte, size)
			for i := 0; i < n; i++ {
				if _, err := io.ReadFull(c, buf); err != nil {
					die("server read: %v", err)
				}
				if _, err := c.Write(buf[:1]); err != nil {
					die("server write: %v", err)
				}
			}
			c.Close()
			close(done)
		}()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			die("dial: %v", err)
		}
		if err := c.Handshake(); err != nil {
			die("handshake: %v", err)
		}
		buf := make([]byte, size)
		ack := make([]byte, 1)
		t0 := time.Now()
		for i := 0; i < n; i++ {
			if _, err := c.Write(buf); err != nil {
				die("write: %v", err)
			}
			if _, err := io.ReadFull(c, ack); err != nil {
				die("ack: %v", err)
			}
		}
		el := time.Since(t0)
		c.Close()
		<-done
		// one round trip = 4 crypto/tls calls: client Write and Read, server Read and Write
		fmt.Printf("%d\n", el.Nanoseconds()/int64(n))
		return
	default:
		die("unknown mode %q", os.Args[1])
	}
	fmt.Println("ok")
}
