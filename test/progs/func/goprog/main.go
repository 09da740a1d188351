// Test program for Go symbolization: prints its pid and the entry address of
// (*Server).Handle, then waits for stdin to close.
package main

import (
	"fmt"
	"io"
	"os"
	"reflect"
)

type Server struct{ n int }

//go:noinline
func (s *Server) Handle(x int) int {
	s.n += x
	return s.n
}

func main() {
	s := &Server{}
	s.Handle(1)
	fmt.Printf("pid=%d handle=%#x\n", os.Getpid(), reflect.ValueOf((*Server).Handle).Pointer())
	io.Copy(io.Discard, os.Stdin)
}
