package main

import "fmt"

func (e *env) importCmd(args []string) int {
	fmt.Fprintln(e.stderr, "tern import: not implemented yet")
	return exitError
}

func (e *env) exportCmd(args []string) int {
	fmt.Fprintln(e.stderr, "tern export: not implemented yet")
	return exitError
}
