// gobcorpus writes gob streams made by Go's encoding/gob and checks streams written by another
// implementation (the Swift GoPluginGob module) against the same values.
//
//	gobcorpus write DIR   # one NAME.gob file per corpus entry
//	gobcorpus check DIR   # decodes every NAME.gob in DIR into the entry's Go types; exit 1 on a difference
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io/ioutil"
	"math"
	"net/rpc"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

type Basics struct {
	Bool    bool
	Int     int
	Int8    int8
	Int16   int16
	Int32   int32
	Int64   int64
	Uint    uint
	Uint8   uint8
	Uint16  uint16
	Uint32  uint32
	Uint64  uint64
	Float32 float32
	Float64 float64
	String  string
	Bytes   []byte
}

type Point struct{ X, Y int }

type Inner struct {
	Name  string
	Tags  []string
	Point Point
}

type Outer struct {
	Name   string
	Inner  Inner
	Inners []Inner
	ByName map[string]Inner
	Grid   [][]int
	Counts map[int]uint
}

type WithAny struct {
	Any     interface{}
	List    []interface{}
	Map     map[string]interface{}
	Shape   interface{}
	Nothing interface{}
}

// Stamp marshals itself, as time.Time does: gob sends its bytes as they are.
type Stamp struct{ secs uint32 }

func (s Stamp) GobEncode() ([]byte, error) {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, s.secs)
	return b, nil
}

func (s *Stamp) GobDecode(b []byte) error {
	if len(b) != 4 {
		return errors.New("stamp: want 4 bytes")
	}
	s.secs = binary.BigEndian.Uint32(b)
	return nil
}

type Event struct {
	Name string
	At   Stamp
}

type Complexes struct {
	C64  complex64
	C128 complex128
}

type Arrays struct {
	A [2]string
	B [3]int8
}

func iface(v interface{}) *interface{} { return &v }

// corpus is every entry: the values its stream holds, in order. A *interface{} is sent as a
// top-level interface value.
func corpus() map[string][]interface{} {
	return map[string][]interface{}{
		"basics": {
			Basics{true, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1.5, 2.25, "eleven", []byte{1, 2, 3}},
			Basics{false, -1, math.MinInt8, math.MinInt16, math.MinInt32, math.MinInt64, math.MaxUint64 >> 1, math.MaxUint8,
				math.MaxUint16, math.MaxUint32, math.MaxUint64, -1.5, -2.25, "negative", []byte{0}},
			Basics{},
		},
		"floats":  {[]float64{math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 1e300, 5e-324}, float32(1.25)},
		"unicode": {[]string{"héllo, 世界 🌍", "", "tab\tnul\x00", strings.Repeat("ü", 300)}, map[string]string{"ключ": "значение"}},
		"nested": {Outer{
			Name:   "outer",
			Inner:  Inner{Name: "in", Tags: []string{"a", "b"}, Point: Point{1, -1}},
			Inners: []Inner{{Name: "first"}, {Tags: []string{"only tags"}}, {Point: Point{0, 9}}},
			ByName: map[string]Inner{"x": {Name: "x"}, "y": {Point: Point{2, 3}}},
			Grid:   [][]int{{1, 2}, {}, {3}},
			Counts: map[int]uint{-1: 1, 1000000: 2},
		}},
		"interfaces": {
			WithAny{
				Any:   "str",
				List:  []interface{}{1, "two", 3.5, true, []byte("b"), uint64(5), int64(-6)},
				Map:   map[string]interface{}{"key": "k", "value": []byte("v"), "n": 1, "point": Point{1, 2}},
				Shape: Point{3, 4},
			},
			iface(map[string]interface{}{"key": "k", "value": []byte("v")}),
			iface(nil),
			iface(Point{5, 6}),
		},
		"twice":      {Point{1, 2}, Point{0, 5}, Outer{Name: "one"}, Outer{Name: "two", Grid: [][]int{{1}}}, Point{}},
		"gobencoder": {Event{Name: "e", At: Stamp{42}}, Stamp{7}, []Stamp{{1}, {2}}},
		"toplevel": {7, -7, "s", []string{"a", "b"}, map[string]int{"x": 1}, true, uint64(math.MaxUint64), []byte("raw"),
			struct{}{}, [][]int{{1}, {}, {2, 3}}, 0, ""},
		"rpc": {rpc.Request{ServiceMethod: "Plugin.Greet", Seq: 1}, iface(nil),
			rpc.Response{ServiceMethod: "Plugin.Greet", Seq: 1, Error: "boom"}, "Hello!"},
		"complex": {Complexes{1 + 2i, -3.5}, complex(0, -1)},
		"arrays":  {[3]int8{1, -2, 3}, Arrays{A: [2]string{"x", ""}, B: [3]int8{0, 0, 7}}},
	}
}

func init() {
	gob.Register(Point{})
	gob.Register(map[string]interface{}{})
	gob.Register([]interface{}{})
}

func write(dir string) error {
	for name, values := range corpus() {
		var b bytes.Buffer
		enc := gob.NewEncoder(&b)
		for _, v := range values {
			if err := enc.Encode(v); err != nil {
				return fmt.Errorf("%s: %v", name, err)
			}
		}
		if err := ioutil.WriteFile(filepath.Join(dir, name+".gob"), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// show prints a value for a message.
func show(v interface{}) string { return fmt.Sprintf("%#v", v) }

// same compares as gob can carry values: NaN equals NaN, and a nil slice or map equals an empty
// one (gob sends neither).
func same(a, b reflect.Value) bool {
	if a.IsValid() != b.IsValid() {
		return false
	}
	if !a.IsValid() {
		return true
	}
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		x, y := a.Float(), b.Float()
		return x == y && math.Signbit(x) == math.Signbit(y) || math.IsNaN(x) && math.IsNaN(y)
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !same(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for _, k := range a.MapKeys() {
			if !same(a.MapIndex(k), b.MapIndex(k)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !same(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Interface, reflect.Ptr:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return same(a.Elem(), b.Elem())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Complex64, reflect.Complex128:
		return a.Complex() == b.Complex()
	case reflect.String:
		return a.String() == b.String()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	default:
		return false
	}
}

func check(dir string) error {
	entries := corpus()
	files, err := filepath.Glob(filepath.Join(dir, "*.gob"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no .gob files in %s", dir)
	}
	sort.Strings(files)
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".gob")
		values, ok := entries[name]
		if !ok {
			return fmt.Errorf("%s: not a corpus entry", name)
		}
		data, err := ioutil.ReadFile(file)
		if err != nil {
			return err
		}
		dec := gob.NewDecoder(bytes.NewReader(data))
		for i, want := range values {
			got := reflect.New(reflect.TypeOf(want))
			if err := dec.Decode(got.Interface()); err != nil {
				return fmt.Errorf("%s: value %d: %v", name, i, err)
			}
			if !same(got.Elem(), reflect.ValueOf(want)) {
				return fmt.Errorf("%s: value %d: got %s, want %s", name, i, show(got.Elem().Interface()), show(want))
			}
		}
		var extra interface{}
		if err := dec.Decode(&extra); err == nil {
			return fmt.Errorf("%s: more values than the entry has", name)
		}
	}
	fmt.Printf("%d files match\n", len(files))
	return nil
}

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "write" && os.Args[1] != "check") {
		fmt.Fprintln(os.Stderr, "usage: gobcorpus write|check DIR")
		os.Exit(2)
	}
	var err error
	if os.Args[1] == "write" {
		err = write(os.Args[2])
	} else {
		err = check(os.Args[2])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gobcorpus:", err)
		os.Exit(1)
	}
}
