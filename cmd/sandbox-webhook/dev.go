package main

import (
	"fmt"
	"io"
)

func devCommand(args []string, stdout, stderr io.Writer) error {
	return &exitError{code: 2, err: fmt.Errorf("dev: not built yet")}
}
