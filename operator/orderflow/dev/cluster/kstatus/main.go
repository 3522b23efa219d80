// kstatus: reads a JSON list of Kubernetes objects on stdin and prints, for each, the status
// that sigs.k8s.io/cli-utils/pkg/kstatus computes (the library Flux, kpt and cli-utils use).
// The tests use it to check that every phase of Orders and Fulfillments reads as docs/status.md says.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Set at build time from the cli-utils version built against.
var version = "unknown"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-version" {
		fmt.Println("kstatus sigs.k8s.io/cli-utils", version)
		return
	}
	// The API machinery's decoder keeps integers as int64, as unstructured objects expect.
	var objects []map[string]interface{}
	data, err := io.ReadAll(os.Stdin)
	if err == nil {
		err = utiljson.Unmarshal(data, &objects)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading a JSON list of objects:", err)
		os.Exit(2)
	}
	results := []map[string]string{}
	for _, object := range objects {
		u := &unstructured.Unstructured{Object: object}
		result, err := status.Compute(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, u.GetName(), err)
			os.Exit(1)
		}
		results = append(results, map[string]string{"name": u.GetName(), "status": string(result.Status), "message": result.Message})
	}
	_ = json.NewEncoder(os.Stdout).Encode(results)
}
