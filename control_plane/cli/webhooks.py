"""`atrium webhooks …`: tools for webhook receivers."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from control_plane.cli.common import console

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

app = typer.Typer(help="Webhook tools.", no_args_is_help=True)


@app.command("listen")
def listen(
    secret: str = typer.Option(..., help="The whsec_… secret shown when the webhook was made."),
    port: int = typer.Option(9000, help="Port on 127.0.0.1."),
) -> None:
    """Receive webhooks locally, verify their Standard Webhooks signature, print them.

    Example: atrium webhooks listen --secret whsec_... --port 9000
    """
    from http.server import HTTPServer

    handler = _handler(secret)
    console.print(f"listening on http://127.0.0.1:{port}/ (Ctrl-C stops)")
    server = HTTPServer(("127.0.0.1", port), handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _handler(secret: str) -> type[BaseHTTPRequestHandler]:
    from http.server import BaseHTTPRequestHandler

    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    verifier = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
            try:
                event = verifier.verify(body, dict(self.headers.items()))
            except WebhookVerificationError as exc:
                console.print(f"[red]rejected: {exc}[/red]")
                self.send_response(401)
            else:
                console.print(f"[green]verified[/green] {event['type']} {event['data']}")
                self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            return

    return Handler
