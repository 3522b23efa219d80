// lua-health: runs an Argo CD health check (Lua) in gopher-lua, the interpreter Argo CD uses, on
// a JSON list of Kubernetes objects read from stdin, as Argo CD does: the object is the global
// `obj`, the script returns a table with `status` and `message`. Prints one JSON result each.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	lua "github.com/yuin/gopher-lua"
)

// Set at build time from the gopher-lua version built against.
var version = "unknown"

func toLua(state *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case map[string]interface{}:
		table := state.NewTable()
		for key, item := range v {
			table.RawSetString(key, toLua(state, item))
		}
		return table
	case []interface{}:
		table := state.NewTable()
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case string:
		return lua.LString(v)
	case float64:
		return lua.LNumber(v)
	case bool:
		return lua.LBool(v)
	default:
		return lua.LNil
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-version" {
		fmt.Println("lua-health github.com/yuin/gopher-lua", version)
		return
	}
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: lua-health SCRIPT.lua < objects.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var objects []map[string]interface{}
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintln(os.Stderr, "reading a JSON list of objects:", err)
		os.Exit(2)
	}
	results := []map[string]string{}
	for _, object := range objects {
		state := lua.NewState()
		state.SetGlobal("obj", toLua(state, object))
		if err := state.DoString(string(script)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		returned, ok := state.Get(-1).(*lua.LTable)
		if !ok {
			fmt.Fprintln(os.Stderr, "the script did not return a table")
			os.Exit(1)
		}
		name := ""
		if metadata, ok := object["metadata"].(map[string]interface{}); ok {
			name, _ = metadata["name"].(string)
		}
		results = append(results, map[string]string{
			"name":    name,
			"status":  returned.RawGetString("status").String(),
			"message": returned.RawGetString("message").String(),
		})
		state.Close()
	}
	_ = json.NewEncoder(os.Stdout).Encode(results)
}
