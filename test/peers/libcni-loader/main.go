// libcni-loader: loads CNI conf dirs with the real libcni and go-cni, for the differential test
// (test/e2e/conformance-libcni.test.ts). scripts/peers.sh builds it once per runtime profile,
// against the go-cni and libcni versions that runtime vendors.
//
// Input: one conf dir path per line on stdin. Output: one JSON line per dir, with each candidate
// file (libcni.ConfFiles, sorted as go-cni sorts) loaded the way go-cni's loadFromConfDir loads
// it, and the verdict of go-cni itself (New + Load(WithDefaultConf), max_conf_num 1).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	gocni "github.com/containerd/go-cni"
	"github.com/containernetworking/cni/libcni"
)

type fileResult struct {
	File    string `json:"file"`
	OK      bool   `json:"ok"`
	Network string `json:"network,omitempty"`
	// Stage is which go-cni step failed: "list" (ConfListFromFile), "conf" (ConfFromFile) or
	// "convert" (ConfListFromConf); Error is libcni's error text, unwrapped.
	Stage string `json:"stage,omitempty"`
	Error string `json:"error,omitempty"`
}

type verdict struct {
	Ready   bool   `json:"ready"`
	File    string `json:"file,omitempty"`
	Network string `json:"network,omitempty"`
	Error   string `json:"error,omitempty"`
}

type dirResult struct {
	Dir     string       `json:"dir"`
	Files   []fileResult `json:"files"`
	Verdict verdict      `json:"verdict"`
}

func loadFile(path string) fileResult {
	r := fileResult{File: filepath.Base(path)}
	var list *libcni.NetworkConfigList
	if strings.HasSuffix(path, ".conflist") {
		l, err := libcni.ConfListFromFile(path)
		if err != nil {
			r.Stage, r.Error = "list", err.Error()
			return r
		}
		list = l
	} else {
		conf, err := libcni.ConfFromFile(path)
		if err != nil {
			r.Stage, r.Error = "conf", err.Error()
			return r
		}
		if conf.Network.Type == "" {
			r.Stage, r.Error = "type", "network type not found"
			return r
		}
		l, err := libcni.ConfListFromConf(conf)
		if err != nil {
			r.Stage, r.Error = "convert", err.Error()
			return r
		}
		list = l
	}
	if len(list.Plugins) == 0 {
		r.Stage, r.Error = "empty", "has no networks"
		return r
	}
	r.OK, r.Network = true, list.Name
	return r
}

func loadDir(dir string) dirResult {
	out := dirResult{Dir: dir, Files: []fileResult{}}
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if err == nil {
		sort.Strings(files)
		for _, f := range files {
			out.Files = append(out.Files, loadFile(f))
		}
	}
	c, err := gocni.New(gocni.WithPluginConfDir(dir), gocni.WithPluginDir([]string{"/nonexistent-cni-bin"}))
	if err == nil {
		err = c.Load(gocni.WithDefaultConf)
	}
	if err != nil {
		out.Verdict.Error = err.Error()
		return out
	}
	out.Verdict.Ready = true
	if nets := c.GetConfig().Networks; len(nets) > 0 {
		out.Verdict.Network = nets[0].Config.Name
	}
	if len(files) > 0 {
		out.Verdict.File = filepath.Base(files[0])
	}
	return out
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	enc := json.NewEncoder(os.Stdout)
	w := bufio.NewWriter(os.Stdout)
	enc = json.NewEncoder(w)
	for in.Scan() {
		if err := enc.Encode(loadDir(in.Text())); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		w.Flush()
	}
}
