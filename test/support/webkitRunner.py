"""WebKitGTK for tests (test/support/webkit.ts): one WebView on the URL given, with no driver.

Usage: /usr/bin/python3 webkitRunner.py URL

Starts its own Xvfb (the display number chosen by Xvfb, -displayfd; no TCP, no auth file), then
one offscreen WebView on URL, in an ephemeral session (nothing written under $HOME) where every
connection but to 127.0.0.1 goes to a proxy on port 9 of 127.0.0.1, where nothing listens. Its
stdin is the lifeline: when it closes (the test process gone), Xvfb is ended and it exits. The
test kit kills its whole process group (Xvfb and WebKit's own processes included) at the end.
"""

import os
import subprocess
import sys

read_end, write_end = os.pipe()
xvfb = subprocess.Popen(
    ["/usr/bin/Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp", "-screen", "0", "1024x768x24"],
    pass_fds=[write_end],
    stdin=subprocess.DEVNULL,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
os.close(write_end)
display = b""
while not display.endswith(b"\n"):
    chunk = os.read(read_end, 16)
    if not chunk:
        sys.exit("Xvfb exited before it chose a display")
    display += chunk
os.close(read_end)
os.environ["DISPLAY"] = ":" + display.decode().strip()

try:
    import gi

    gi.require_version("Gtk", "3.0")
    gi.require_version("WebKit2", "4.1")
    from gi.repository import GLib, Gtk, WebKit2
except BaseException:
    xvfb.terminate()
    raise


def quit(*_args):
    xvfb.terminate()
    Gtk.main_quit()
    return False


manager = WebKit2.WebsiteDataManager.new_ephemeral()
manager.set_network_proxy_settings(
    WebKit2.NetworkProxyMode.CUSTOM, WebKit2.NetworkProxySettings.new("http://127.0.0.1:9", ["127.0.0.1"])
)
context = WebKit2.WebContext.new_with_website_data_manager(manager)
window = Gtk.OffscreenWindow()
view = WebKit2.WebView.new_with_context(context)
window.add(view)
window.show_all()
view.load_uri(sys.argv[1])
GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_HUP | GLib.IO_IN | GLib.IO_ERR, quit)
Gtk.main()
