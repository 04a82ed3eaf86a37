// A Jetty 9.4 WebSocket server (Debian's libjetty9-java / libjetty9-extra-java 9.4.57, Java 17) as a
// peer for test/trialsRound20Jetty.test.ts: embedded as people embed it (Server, ServerConnector on
// 127.0.0.1, ServletContextHandler, one WebSocketServlet per path), Jetty's defaults kept except
// where a path says. It reads its port from stdin (0: any), prints "PORT n" once listening, then
// what it saw as lines; "STOP" on stdin stops it gracefully (server.stop()) and it prints
// "STOPPED". Compiled once by test/support/jettyPeer.ts (javac, classes cached by the source's
// hash). Arguments: idle=<ms> (the /idle path's idle timeout). Lines are "<WHAT> <path>[:<id>] ...".
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;
import org.eclipse.jetty.websocket.api.Session;
import org.eclipse.jetty.websocket.api.WebSocketListener;
import org.eclipse.jetty.websocket.api.WebSocketPolicy;
import org.eclipse.jetty.websocket.servlet.WebSocketServlet;
import org.eclipse.jetty.websocket.servlet.WebSocketServletFactory;

public class jettyPeer {
  static synchronized void say(String line) {
    System.out.println(line);
    System.out.flush();
  }

  static String param(Session session, String name, String otherwise) {
    Map<String, List<String>> params = session.getUpgradeRequest().getParameterMap();
    List<String> values = params.get(name);
    return values == null || values.isEmpty() ? otherwise : values.get(0);
  }

  /** Echoes text and binary; prints what it saw, tagged with its path's name. */
  static class Echo implements WebSocketListener {
    String name;
    Session session;

    Echo(String name) {
      this.name = name;
    }

    @Override
    public void onWebSocketConnect(Session session) {
      this.session = session;
      // ?id= names the connection's lines apart from other tests' on the same path.
      String id = param(session, "id", "");
      if (!id.isEmpty()) name = name + ":" + id;
      say("OPEN " + name + " " + session.getUpgradeResponse().getExtensions().stream()
          .map(e -> e.getParameterizedName()).collect(java.util.stream.Collectors.joining(", ")));
    }

    @Override
    public void onWebSocketText(String text) {
      say("TEXT " + name + " " + text.length() + " " + text.substring(0, Math.min(12, text.length())));
      if (text.startsWith("push ")) {
        push(text.substring(5).split(" "));
        return;
      }
      if (text.startsWith("flood ")) {
        flood(text.substring(6).split(" "));
        return;
      }
      try {
        session.getRemote().sendString(text);
      } catch (Exception e) {
        say("WRITEERR " + name + " " + e);
      }
    }

    @Override
    public void onWebSocketBinary(byte[] payload, int offset, int length) {
      long sum = 0;
      for (int i = offset; i < offset + length; i++) sum = (sum * 31 + (payload[i] & 0xff)) % 1_000_000_007L;
      say("BINARY " + name + " " + length + " " + sum);
      try {
        session.getRemote().sendBytes(ByteBuffer.wrap(payload, offset, length));
      } catch (Exception e) {
        say("WRITEERR " + name + " " + e);
      }
    }

    /** "flood <count> <bytes>": <count> binary messages of <bytes> each, written one by one (blocking). */
    void flood(String[] args) {
      int count = Integer.parseInt(args[0]);
      int size = Integer.parseInt(args[1]);
      int i = 0;
      try {
        for (; i < count; i++) session.getRemote().sendBytes(ByteBuffer.wrap(new byte[size]));
        say("FLOODED " + name + " " + i);
      } catch (Exception e) {
        say("FLOODERR " + name + " " + i + " " + e.getClass().getSimpleName() + ": " + e.getMessage());
      }
    }

    /** "push binary|text <bytes> <fragment>": one message in fragments of <fragment> bytes. */
    void push(String[] args) {
      boolean binary = args[0].equals("binary");
      int size = Integer.parseInt(args[1]);
      int fragment = Integer.parseInt(args[2]);
      try {
        int fragments = 0;
        for (int at = 0; at < size; at += fragment) {
          int n = Math.min(fragment, size - at);
          boolean last = at + n >= size;
          if (binary) {
            byte[] part = new byte[n];
            for (int i = 0; i < n; i++) part[i] = (byte) ((at + i) % 251);
            session.getRemote().sendPartialBytes(ByteBuffer.wrap(part), last);
          } else {
            StringBuilder part = new StringBuilder(n);
            for (int i = 0; i < n; i++) part.append((char) ('a' + (at + i) % 26));
            session.getRemote().sendPartialString(part.toString(), last);
          }
          fragments++;
        }
        say("PUSHED " + name + " " + fragments);
      } catch (Exception e) {
        say("WRITEERR " + name + " " + e);
      }
    }

    @Override
    public void onWebSocketClose(int code, String reason) {
      say("CLOSE " + name + " " + code + " " + reason);
    }

    @Override
    public void onWebSocketError(Throwable cause) {
      say("ERROR " + name + " " + cause.getClass().getSimpleName() + ": " + cause.getMessage());
    }
  }

  /** Closes at once with ?code= and a reason of ?reason=, or ?len= times ?char= (default "r"). */
  static class Closer extends Echo {
    Closer() {
      super("close");
    }

    @Override
    public void onWebSocketConnect(Session session) {
      super.onWebSocketConnect(session);
      int code = Integer.parseInt(param(session, "code", "4000"));
      int len = Integer.parseInt(param(session, "len", "-1"));
      String reason = len >= 0 ? param(session, "char", "r").repeat(len) : param(session, "reason", "jetty says bye");
      session.close(code, reason);
    }
  }

  static WebSocketServlet servlet(java.util.function.Consumer<WebSocketServletFactory> configure) {
    return new WebSocketServlet() {
      @Override
      public void configure(WebSocketServletFactory factory) {
        configure.accept(factory);
      }
    };
  }

  public static void main(String[] args) throws Exception {
    long idle = 1000;
    for (String arg : args) {
      if (arg.startsWith("idle=")) idle = Long.parseLong(arg.substring(5));
    }
    final long idleTimeout = idle;
    BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    int port = Integer.parseInt(stdin.readLine().trim());

    Server server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost("127.0.0.1");
    connector.setPort(port);
    server.addConnector(connector);
    ServletContextHandler context = new ServletContextHandler();
    context.setContextPath("/");
    // Jetty's defaults, as a user keeps them.
    context.addServlet(new ServletHolder(servlet(factory -> {
      WebSocketPolicy policy = factory.getPolicy();
      say("DEFAULTS " + policy.getMaxTextMessageSize() + " " + policy.getMaxBinaryMessageSize() + " "
          + policy.getIdleTimeout());
      factory.setCreator((request, response) -> new Echo("echo"));
    })), "/echo");
    // A short idle timeout.
    context.addServlet(new ServletHolder(servlet(factory -> {
      factory.getPolicy().setIdleTimeout(idleTimeout);
      factory.setCreator((request, response) -> new Echo("idle"));
    })), "/idle");
    // The limits raised to 16 MiB.
    context.addServlet(new ServletHolder(servlet(factory -> {
      factory.getPolicy().setMaxTextMessageSize(16 * 1024 * 1024);
      factory.getPolicy().setMaxBinaryMessageSize(16 * 1024 * 1024);
      factory.setCreator((request, response) -> new Echo("big"));
    })), "/big");
    context.addServlet(new ServletHolder(servlet(factory -> factory.setCreator((request, response) -> new Closer()))),
        "/close");
    // A creator that refuses: ?how=forbidden sends 403 with a message, ?how=null returns null.
    context.addServlet(new ServletHolder(servlet(factory -> factory.setCreator((request, response) -> {
      String how = request.getParameterMap().getOrDefault("how", List.of("null")).get(0);
      say("REFUSE " + how);
      if (how.equals("forbidden")) {
        try {
          response.sendForbidden("not you");
        } catch (Exception e) {
          say("REFUSEERR " + e);
        }
      }
      return null;
    }))), "/refuse");
    server.setHandler(context);
    server.start();
    say("PORT " + connector.getLocalPort());

    String line;
    while ((line = stdin.readLine()) != null) {
      if (line.trim().equals("STOP")) {
        server.stop();
        say("STOPPED");
        System.exit(0);
      }
    }
  }
}
