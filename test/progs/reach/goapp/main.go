// goapp parses a URL N times with the standard library's net/url (the stdlib module of
// Debian's golang-go), so a test can probe net/url.Parse. Never calls net/url.ParseQuery.
package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
)

//go:noinline
func parse(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Host
}

func main() {
	n := 3
	if len(os.Args) > 1 {
		n, _ = strconv.Atoi(os.Args[1])
	}
	h := ""
	for i := 0; i < n; i++ {
		h = parse("https://example.invalid/path?q=" + strconv.Itoa(i))
	}
	fmt.Printf("goapp pid=%d host=%s\n", os.Getpid(), h)
}
