// Package jsonline ends an interop program the way the peer package's Finish
// does, one JSON line on stdout and exit status 0 or 1, without linking
// go-plugin 1.0.1, whose internal protos would clash with the newer
// plugin.* messages (plugin.ConnInfo with Knock) the multiplexing peers use.
package jsonline

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
)

// Result is a program's one JSON line.
type Result interface {
	// SetError records why the program failed, as the line's "error".
	SetError(string)
}

// finishing is locked by the first Finish and never unlocked, so a signal
// arriving while main finishes cannot print a second JSON line.
var finishing sync.Mutex

// Finish prints res as one JSON line and exits 0 if err is nil, otherwise 1
// with err recorded in res.
func Finish(res Result, err error) {
	finishing.Lock()
	code := 0
	if err != nil {
		res.SetError(err.Error())
		code = 1
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if enc.Encode(res) != nil {
		fmt.Println(`{"error":"cannot encode the result"}`)
	}
	os.Exit(code)
}
