// Command ceiling measures the API server's own server-side-apply throughput: it reads the
// objects of a directory written by scripts/gen-manifests and applies each one once with a
// server-side apply PATCH (force, its own field manager) at a fixed concurrency, Namespaces
// first. It prints one JSON line: {"objects": N, "seconds": S, "errors": E}.
//
//	ceiling --kubeconfig FILE --dir DIR [--concurrency 8] [--http1]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
)

// resources maps the kinds scripts/gen-manifests writes to their API resources.
var resources = map[string]schema.GroupVersionResource{
	"Namespace":      {Version: "v1", Resource: "namespaces"},
	"ConfigMap":      {Version: "v1", Resource: "configmaps"},
	"Secret":         {Version: "v1", Resource: "secrets"},
	"Service":        {Version: "v1", Resource: "services"},
	"ServiceAccount": {Version: "v1", Resource: "serviceaccounts"},
	"Deployment":     {Group: "apps", Version: "v1", Resource: "deployments"},
	"Role":           {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	"RoleBinding":    {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
}

func load(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []*unstructured.Unstructured
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if !strings.HasPrefix(line, "{") {
				continue // gen-manifests writes one JSON document per line between `---`
			}
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON([]byte(line)); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			out = append(out, u)
		}
		fh.Close()
	}
	return out, nil
}

func apply(ctx context.Context, c dynamic.Interface, u *unstructured.Unstructured, dryRun bool) error {
	gvr, ok := resources[u.GetKind()]
	if !ok {
		return fmt.Errorf("unknown kind %s", u.GetKind())
	}
	body, err := u.MarshalJSON()
	if err != nil {
		return err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: "ceiling", Force: &force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var r dynamic.ResourceInterface = c.Resource(gvr)
	if ns := u.GetNamespace(); ns != "" {
		r = c.Resource(gvr).Namespace(ns)
	}
	_, err = r.Patch(ctx, u.GetName(), types.ApplyPatchType, body, opts)
	return err
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig file")
	dir := flag.String("dir", "", "directory written by scripts/gen-manifests")
	concurrency := flag.Int("concurrency", 8, "concurrent requests")
	http1 := flag.Bool("http1", false, "one HTTP/1.1 connection per concurrent request (as kube-rs, which "+
		"driftless uses) instead of client-go's default of multiplexing on one HTTP/2 connection")
	validate := flag.Bool("validate", false, "dry-run every object first, then apply them: the least a tool "+
		"that validates the whole set before writing (driftless, Flux) must send")
	flag.Parse()
	objs, err := load(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(2)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(2)
	}
	cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limit: the server is what we measure
	cfg.UserAgent = "ceiling"
	if *http1 {
		cfg.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	start := time.Now()
	var errs atomic.Int64
	var rest []*unstructured.Unstructured
	for _, u := range objs {
		if u.GetKind() == "Namespace" {
			if err := apply(ctx, c, u, false); err != nil {
				fmt.Fprintln(os.Stderr, "ceiling:", err)
				errs.Add(1)
			}
		} else {
			rest = append(rest, u)
		}
	}
	pass := func(dryRun bool) {
		work := make(chan *unstructured.Unstructured)
		var wg sync.WaitGroup
		for i := 0; i < *concurrency; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for u := range work {
					if err := apply(ctx, c, u, dryRun); err != nil {
						fmt.Fprintln(os.Stderr, "ceiling:", err)
						errs.Add(1)
					}
				}
			}()
		}
		for _, u := range rest {
			work <- u
		}
		close(work)
		wg.Wait()
	}
	if *validate {
		pass(true)
	}
	pass(false)
	secs := time.Since(start).Seconds()
	out, _ := json.Marshal(map[string]any{"objects": len(objs), "seconds": secs, "errors": errs.Load()})
	fmt.Println(string(out))
	if errs.Load() > 0 {
		os.Exit(1)
	}
}
