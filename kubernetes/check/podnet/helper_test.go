package podnet

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the programs the lab runs inside its
// namespaces (ip netns exec <ns> <test binary>): helperEnv names the mode,
// argsEnv its arguments.
const (
	helperEnv = "PODNET_HELPER"
	argsEnv   = "PODNET_ARGS"
	uidEnv    = "PODNET_UID"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		if err := runHelper(mode, strings.Fields(os.Getenv(argsEnv))); err != nil {
			fmt.Fprintf(os.Stderr, "podnet helper %s: %v\n", mode, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// The labs mostly wait (timeouts, processes starting), not compute: run
	// more of them at once than GOMAXPROCS, unless -parallel says otherwise.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", "6")
	}
	os.Exit(m.Run())
}

func runHelper(mode string, args []string) error {
	switch mode {
	case "serve":
		return serve()
	case "sidecar":
		return sidecar()
	case "dial":
		return dialAll(args)
	case "get":
		return getAll(args)
	}
	return fmt.Errorf("unknown mode")
}

// serve is the fake internet: TCP 53, 443 and 6697 and UDP 53 on every
// address, each answering with the address it saw the client come from.
func serve() error {
	for _, port := range []string{"53", "443", "6697"} {
		ln, err := net.Listen("tcp", ":"+port)
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "peer %s\n", hostOf(c.RemoteAddr()))
				c.Close()
			}
		}()
	}
	// One UDP socket per address, so that answers leave from the address
	// the query went to.
	for _, a := range []string{netIP4 + ":53", "[" + netIP6 + "]:53"} {
		pc, err := net.ListenPacket("udp", a)
		if err != nil {
			return err
		}
		go func() {
			buf := make([]byte, 512)
			for {
				_, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo([]byte("peer "+hostOf(from)+"\n"), from)
			}
		}()
	}
	fmt.Print("ready\n")
	select {}
}

func hostOf(a net.Addr) string {
	h, _, _ := net.SplitHostPort(a.String())
	return h
}

// sidecar stands in for containerboot and tailscaled once they run: the
// health endpoint on TS_LOCAL_ADDR_PORT and, when the sidecar's env asks
// tailscaled for one (TS_SOCKS5_SERVER, TS_OUTBOUND_HTTP_PROXY_LISTEN), a
// proxy listener that connects with tailscaled's bypass mark, as
// tailscaled's own dialer does for destinations outside its routes. The
// proxy speaks a one-line protocol ("host:port\n"), not SOCKS5 or HTTP: the
// question is where its connections go, not how it is asked.
func sidecar() error {
	addr := os.Getenv("TS_LOCAL_ADDR_PORT")
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("health on %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	go http.Serve(ln, mux)
	for _, v := range []string{"TS_SOCKS5_SERVER", "TS_OUTBOUND_HTTP_PROXY_LISTEN"} {
		if a := os.Getenv(v); a != "" {
			pl, err := net.Listen("tcp", a)
			if err != nil {
				return fmt.Errorf("%s=%s: %w", v, a, err)
			}
			go proxy(pl)
		}
	}
	fmt.Print("ready\n")
	select {}
}

// bypassMark is tailscaled's fwmark for its own packets (ip rule 5210 sends
// them to the main table, past the tunnel).
const bypassMark = 0x80000

func proxy(ln net.Listener) {
	d := net.Dialer{Timeout: time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_MARK, bypassMark)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			target, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			up, err := d.Dial("tcp", strings.TrimSpace(target))
			if err != nil {
				return
			}
			defer up.Close()
			io.Copy(c, up)
		}()
	}
}

// dialAll becomes PODNET_UID (the bot's UID) if set, then tries every
// target at once and prints one line each: "<target> ok <peer>" or
// "<target> fail <why>". A target is network:host:port, or
// proxy:<listener>:<host:port>.
func dialAll(targets []string) error {
	if u := os.Getenv(uidEnv); u != "" {
		uid, err := strconv.Atoi(u)
		if err != nil {
			return err
		}
		if err := becomeUser(uid); err != nil {
			return err
		}
	}
	out := make([]string, len(targets))
	var wg sync.WaitGroup
	for i, tg := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			peer, err := dial(tg)
			if err != nil {
				out[i] = tg + " fail " + strings.ReplaceAll(err.Error(), " ", "_")
				return
			}
			out[i] = tg + " ok " + peer
		}()
	}
	wg.Wait()
	fmt.Println(strings.Join(out, "\n"))
	return nil
}

func becomeUser(uid int) error {
	if err := syscall.Setgroups(nil); err != nil {
		return err
	}
	if err := syscall.Setgid(uid); err != nil {
		return err
	}
	return syscall.Setuid(uid)
}

// dialTimeout bounds one dial and its answer. What the lock rejects fails
// at once; only lost packets wait this long.
const dialTimeout = 1500 * time.Millisecond

func dial(target string) (string, error) {
	network, addr, _ := strings.Cut(target, ":")
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	var d net.Dialer
	var c net.Conn
	var err error
	if network == "proxy" {
		listener, dst, _ := strings.Cut(addr, "/")
		if c, err = d.DialContext(ctx, "tcp", listener); err == nil {
			_, err = fmt.Fprintf(c, "%s\n", dst)
		}
	} else {
		c, err = d.DialContext(ctx, network, addr)
		if err == nil && strings.HasPrefix(network, "udp") {
			_, err = c.Write([]byte("query"))
		}
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(dialTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	peer, ok := strings.CutPrefix(strings.TrimSpace(line), "peer ")
	if !ok {
		return "", fmt.Errorf("answer %q", line)
	}
	return peer, nil
}

// getAll fetches each URL and prints "<url> ok" or "<url> fail <why>".
func getAll(urls []string) error {
	c := http.Client{Timeout: 2 * time.Second}
	for _, u := range urls {
		res, err := c.Get(u)
		if err == nil {
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %s", res.Status)
			}
		}
		if err != nil {
			fmt.Printf("%s fail %s\n", u, strings.ReplaceAll(err.Error(), " ", "_"))
			continue
		}
		fmt.Printf("%s ok\n", u)
	}
	return nil
}
