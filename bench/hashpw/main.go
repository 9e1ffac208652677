// Command hashpw prints tern's password hash (argon2id, PHC format) of the
// password read from standard input. bench/compare.sh gives Dovecot the
// same hash ({ARGON2ID} scheme), so a login costs both servers the same.
package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/tern-imap/tern/internal/auth"
)

func main() {
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(os.Stderr, "hashpw: read password:", err)
		os.Exit(1)
	}
	h, err := auth.HashPassword(strings.TrimRight(line, "\r\n"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "hashpw:", err)
		os.Exit(1)
	}
	fmt.Println(h)
}
