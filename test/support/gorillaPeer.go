// A gorilla/websocket server (Debian's golang-github-gorilla-websocket-dev 1.5.0, Go 1.19) as a
// peer for test/trialsRound18Go.test.ts: one path per manner. It reads its port from stdin (0:
// any), prints "PORT n" once listening, and prints what it saw as lines. The chat example's
// timings are scaled by flags (-pongWait, -writeWait; pingPeriod is pongWait*9/10, as there).
// Built by test/support/goPeer.ts with GO111MODULE=off GOPATH=/usr/share/gocode.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

var (
	out     sync.Mutex
	newline = []byte{'\n'}
	space   = []byte{' '}
)

func say(format string, args ...interface{}) {
	out.Lock()
	defer out.Unlock()
	fmt.Printf(format+"\n", args...)
}

// ---------------------------------------------------------------------------------------------
// gorilla's chat example (examples/chat: hub.go, client.go), as people copy it. Two additions,
// each marked: a history of three messages queued before writePump starts (so the batching is
// certain), and prints.

var (
	writeWait      = 10 * time.Second
	pongWait       = 60 * time.Second
	pingPeriod     = (pongWait * 9) / 10
	maxMessageSize = int64(512)
)

type Hub struct {
	clients    map[*ChatClient]bool
	broadcast  chan []byte
	register   chan *ChatClient
	unregister chan *ChatClient
}

func newHub() *Hub {
	return &Hub{
		broadcast:  make(chan []byte),
		register:   make(chan *ChatClient),
		unregister: make(chan *ChatClient),
		clients:    make(map[*ChatClient]bool),
	}
}

func (h *Hub) run() {
	for {
		select {
		case client := <-h.register:
			h.clients[client] = true
		case client := <-h.unregister:
			if _, ok := h.clients[client]; ok {
				delete(h.clients, client)
				close(client.send)
			}
		case message := <-h.broadcast:
			for client := range h.clients {
				select {
				case client.send <- message:
				default:
					say("DROPPED chat %d", client.id) // added
					close(client.send)
					delete(h.clients, client)
				}
			}
		}
	}
}

type ChatClient struct {
	hub   *Hub
	conn  *websocket.Conn
	send  chan []byte
	id    int
	pongs int
}

func (c *ChatClient) readPump() {
	defer func() {
		c.hub.unregister <- c
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessageSize)
	c.conn.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error {
		c.pongs++                             // added
		say("PONG chat %d %d", c.id, c.pongs) // added
		c.conn.SetReadDeadline(time.Now().Add(pongWait))
		return nil
	})
	for {
		_, message, err := c.conn.ReadMessage()
		if err != nil {
			say("READERR chat %d %v", c.id, err) // added
			break
		}
		message = bytes.TrimSpace(bytes.Replace(message, newline, space, -1))
		say("GOT chat %d %s", c.id, message) // added
		c.hub.broadcast <- message
	}
}

func (c *ChatClient) writePump() {
	ticker := time.NewTicker(pingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case message, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if !ok {
				c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			w, err := c.conn.NextWriter(websocket.TextMessage)
			if err != nil {
				return
			}
			w.Write(message)
			n := len(c.send)
			for i := 0; i < n; i++ {
				w.Write(newline)
				w.Write(<-c.send)
			}
			if err := w.Close(); err != nil {
				say("WRITEERR chat %d %v", c.id, err) // added
				return
			}
		case <-ticker.C:
			c.conn.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				say("WRITEERR chat %d %v", c.id, err) // added
				return
			}
		}
	}
}

var chatIds struct {
	sync.Mutex
	next int
}

var upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}

func serveWs(hub *Hub, w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	chatIds.Lock()
	chatIds.next++
	id := chatIds.next
	chatIds.Unlock()
	client := &ChatClient{hub: hub, conn: conn, send: make(chan []byte, 256), id: id}
	client.hub.register <- client
	// added: a history replayed to each newcomer, queued before writePump starts.
	for _, line := range strings.Split(r.URL.Query().Get("history"), ",") {
		if line != "" {
			client.send <- []byte(line)
		}
	}
	say("OPEN chat %d", id)
	go client.writePump()
	go client.readPump()
}

// ---------------------------------------------------------------------------------------------
// Other manners, one path each.

func echo(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	for {
		kind, message, err := conn.ReadMessage()
		if err != nil {
			return
		}
		say("GOT echo %s", message)
		if err := conn.WriteMessage(kind, message); err != nil {
			return
		}
	}
}

// The default Upgrader: CheckOrigin nil, so a request whose Origin's host is not the Host is refused.
func origin(w http.ResponseWriter, r *http.Request) {
	say("ORIGIN %s", r.Header.Get("Origin"))
	conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		say("UPGRADEERR origin %v", err)
		return
	}
	conn.Close()
}

var protoUpgrader = websocket.Upgrader{Subprotocols: []string{"chat.v2", "chat.v1"}}

func proto(w http.ResponseWriter, r *http.Request) {
	conn, err := protoUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	say("PROTO %q", conn.Subprotocol())
	defer conn.Close()
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			return
		}
	}
}

var deflateUpgrader = websocket.Upgrader{EnableCompression: true}

// Counts the bytes read on each accepted connection, by remote address: what a frame cost on the wire.
type countingConn struct {
	net.Conn
	read int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	atomic.AddInt64(&c.read, int64(n))
	return n, err
}

type countingListener struct{ net.Listener }

var counted sync.Map

func (l countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &countingConn{Conn: conn}
	counted.Store(conn.RemoteAddr().String(), c)
	return c, nil
}

func bytesRead(r *http.Request) int64 {
	if c, ok := counted.Load(r.RemoteAddr); ok {
		return atomic.LoadInt64(&c.(*countingConn).read)
	}
	return -1
}

// Echoes with EnableCompression (?compress=1) or without; prints what the client offered and the
// bytes the first message took on the wire.
func deflate(w http.ResponseWriter, r *http.Request) {
	offered := r.Header.Get("Sec-Websocket-Extensions")
	up := &upgrader
	if r.URL.Query().Get("compress") == "1" {
		up = &deflateUpgrader
	}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	say("OFFERED %q", offered)
	before := bytesRead(r)
	for {
		kind, message, err := conn.ReadMessage()
		if err != nil {
			return
		}
		say("WIRE deflate %d %d", len(message), bytesRead(r)-before)
		before = bytesRead(r)
		if err := conn.WriteMessage(kind, message); err != nil {
			return
		}
	}
}

// gorilla's WriteControl(CloseMessage, FormatCloseMessage(4000, reason)), then either the close
// at once (what most code does) or a wait for the client's answer (?wait=1).
func close4000(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	reason := "gorilla says bye"
	if n, _ := strconv.Atoi(r.URL.Query().Get("long")); n > 0 {
		reason = strings.Repeat("r", n)
	}
	err = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, reason), time.Now().Add(time.Second))
	say("WROTE close4000 %v", err)
	if r.URL.Query().Get("wait") == "1" {
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _, err := conn.ReadMessage()
		say("ANSWER close4000 %v", err)
	}
}

// A handler that returns after one message: with conn.Close() (TCP closed, no close frame), or
// without it (?leak=1: the hijacked connection stays open, unread and unanswered).
var leaked struct {
	sync.Mutex
	conns []*websocket.Conn
}

func returns(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	if r.URL.Query().Get("leak") == "1" {
		leaked.Lock() // held: a conn the GC took would be closed by its finalizer
		leaked.conns = append(leaked.conns, conn)
		leaked.Unlock()
		conn.ReadMessage()
		say("LEAKED returns")
		return
	}
	defer conn.Close()
	conn.ReadMessage()
	say("RETURNS")
}

// A ResponseWriter wrapped by a middleware that does not pass Hijack through: gorilla's own answer.
type loggingWriter struct {
	http.ResponseWriter
	status int
}

func (l *loggingWriter) WriteHeader(status int) {
	l.status = status
	l.ResponseWriter.WriteHeader(status)
}

func wrapped(w http.ResponseWriter, r *http.Request) {
	lw := &loggingWriter{ResponseWriter: w}
	_, err := upgrader.Upgrade(lw, r, nil)
	say("UPGRADEERR wrapped %d %v", lw.status, err)
}

func busy(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "7")
	http.Error(w, "busy, come back later", http.StatusServiceUnavailable)
}

// Reads slowly (1 ms after each message, about 16 MB/s), checks order and wholeness of "i:<8192 x é>", prints the count.
func slow(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetReadLimit(1 << 20)
	count, whole := 0, true
	body := strings.Repeat("é", 8192)
	for {
		_, message, err := conn.ReadMessage()
		if err != nil {
			code := -1
			if ce, ok := err.(*websocket.CloseError); ok {
				code = ce.Code
			}
			say("SLOW %d %v %d", count, whole, code)
			return
		}
		if string(message) != strconv.Itoa(count)+":"+body {
			whole = false
		}
		count++
		time.Sleep(time.Millisecond)
	}
}

// Pushes frames of 16 KiB as fast as it can, under a write deadline (-writeWait): a client that
// reads slowly makes a write miss it.
func push(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	frame := bytes.Repeat([]byte("p"), 16*1024)
	for i := 0; i < 100000; i++ {
		conn.SetWriteDeadline(time.Now().Add(writeWait))
		if err := conn.WriteMessage(websocket.TextMessage, frame); err != nil {
			say("WRITEERR push %d %v", i, err)
			return
		}
	}
}

func main() {
	pw := flag.Duration("pongWait", pongWait, "the chat example's pongWait")
	ww := flag.Duration("writeWait", writeWait, "the chat example's writeWait")
	flag.Parse()
	pongWait, writeWait = *pw, *ww
	pingPeriod = (pongWait * 9) / 10

	hub := newHub()
	go hub.run()
	mux := http.NewServeMux()
	mux.HandleFunc("/chat", func(w http.ResponseWriter, r *http.Request) { serveWs(hub, w, r) })
	mux.HandleFunc("/echo", echo)
	mux.HandleFunc("/origin", origin)
	mux.HandleFunc("/proto", proto)
	mux.HandleFunc("/deflate", deflate)
	mux.HandleFunc("/close4000", close4000)
	mux.HandleFunc("/returns", returns)
	mux.HandleFunc("/wrapped", wrapped)
	mux.HandleFunc("/busy", busy)
	mux.HandleFunc("/slow", slow)
	mux.HandleFunc("/push", push)

	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	port, _ := strconv.Atoi(strings.TrimSpace(line))
	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		say("LISTENERR %v", err)
		os.Exit(1)
	}
	say("PORT %d", listener.Addr().(*net.TCPAddr).Port)
	http.Serve(countingListener{listener}, mux)
}
