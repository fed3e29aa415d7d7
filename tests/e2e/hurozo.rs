//! Compatibility with Hurozo in both directions: the real hurozo 0.1.1
//! Python worker against our hub, and our worker against a server that
//! plays the exact message shapes of Hurozo's documentation.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use node_host_e2e::{Hub, Service, eventually, execute, guest, node_host, repo_root};
use serde_json::{Value, json};
use tungstenite::Message;

/// The virtualenv python with hurozo 0.1.1, which `./run-tests` sets up
/// (`tests/hurozo/setup-venv DIR` prints it).
pub fn hurozo_python() -> PathBuf {
    let python = std::env::var_os("NODE_HOST_HUROZO_PYTHON")
        .map(PathBuf::from)
        .expect(
            "NODE_HOST_HUROZO_PYTHON is not set: run ./run-tests, or set it to the python that \
         `tests/hurozo/setup-venv DIR` prints",
        );
    assert!(python.is_file(), "{} does not exist", python.display());
    python
}

#[test]
fn the_real_hurozo_python_worker_serves_through_our_hub() {
    let hub = Hub::start("hurozo-python");
    let token = hub.token("alice", false);
    let _python = Service::start(
        Command::new(hurozo_python())
            .arg(repo_root().join("tests/hurozo/hello_node.py"))
            .env("HUROZO_TOKEN", &token)
            .env("HUROZO_API_URL", &hub.url)
            .env("NODE_NAME", "ws_hello"),
    );
    // It registers at once, then connects within about a second.
    eventually(Duration::from_secs(30), "the Python worker answers", || {
        execute(
            &hub.url,
            &token,
            "ws_hello",
            json!({"inputs": {"name": "Ada"}}),
        )
        .0 == 200
    });
    let (status, answer) = execute(
        &hub.url,
        &token,
        "ws_hello",
        json!({"inputs": {"name": "Ada"}}),
    );
    assert_eq!(status, 200);
    assert_eq!(answer["node"], "ws_hello");
    assert_eq!(
        answer["outputs"],
        json!({"greeting": "Hello Ada", "shout": "HELLO ADA"})
    );
}

/// Reads one HTTP/1.1 request: (request line, headers, body).
fn read_request(stream: &TcpStream) -> (String, Vec<String>, Vec<u8>) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        headers.push(line.trim().to_owned());
    }
    let length = headers
        .iter()
        .find_map(|header| {
            let (name, value) = header.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    (request_line.trim().to_owned(), headers, body)
}

/// The token the scripted backend hands out: `+/=` must be encoded by the worker.
const AWKWARD_TOKEN: &str = "tok+en/with=";

#[test]
#[expect(
    clippy::result_large_err,
    reason = "tungstenite's handshake callback has this signature"
)]
fn our_worker_speaks_the_documented_shapes_to_a_scripted_backend() {
    let http = TcpListener::bind("127.0.0.1:0").unwrap();
    let backend = format!("http://{}", http.local_addr().unwrap());
    let ws = TcpListener::bind("127.0.0.1:0").unwrap();
    let ws_url = format!("ws://{}/Prod", ws.local_addr().unwrap());
    let (registrations, registered) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in http.incoming().take(50) {
            let mut stream = stream.unwrap();
            let (line, headers, body) = read_request(&stream);
            let body: Value = serde_json::from_slice(&body).unwrap();
            let reply = json!({
                "status": "registered", "websocket_url": ws_url, "token": AWKWARD_TOKEN,
                "inputs": body["inputs"], "outputs": body["outputs"],
            })
            .to_string();
            let _ = registrations.send((line, headers, body));
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    let _worker = Service::start(
        node_host()
            .arg("run")
            .arg(guest("hello"))
            .args(["--concurrency", "1", "--token", "api-token"])
            .env("HUROZO_API_URL", &backend),
    );

    let (line, headers, body) = registered.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(line, "POST /api/remote_nodes/register HTTP/1.1");
    assert!(
        headers
            .iter()
            .any(|header| header.eq_ignore_ascii_case("authorization: Bearer api-token")),
        "{headers:?}"
    );
    assert_eq!(
        body,
        json!({"name": "hello", "inputs": ["name"], "outputs": ["greeting", "shout"]})
    );

    let (stream, _) = ws.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut uri = String::new();
    let mut socket = tungstenite::accept_hdr(
        stream,
        |request: &tungstenite::handshake::server::Request, response| {
            uri = request.uri().to_string();
            Ok(response)
        },
    )
    .unwrap();
    assert_eq!(
        uri, "/Prod?auth=tok%2Ben%2Fwith%3D",
        "the token is URL-encoded"
    );

    let send = |socket: &mut tungstenite::WebSocket<TcpStream>, frame: Value| {
        socket.send(Message::text(frame.to_string())).unwrap();
    };
    // An event for another node and a frame that is not JSON are ignored...
    send(
        &mut socket,
        json!({"type": "remote_node", "node": "someone_else", "inputs": {}, "uuid": "u0"}),
    );
    socket.send(Message::text("not JSON at all")).unwrap();
    // ...and the events for this node, with or without `type`, are answered.
    send(
        &mut socket,
        json!({"type": "remote_node", "node": "hello", "inputs": {"name": "Ada"}, "uuid": "u1"}),
    );
    send(
        &mut socket,
        json!({"node": "hello", "inputs": {}, "uuid": "u2"}),
    );
    let mut replies = Vec::new();
    while replies.len() < 2 {
        match socket.read().unwrap() {
            Message::Text(text) => {
                replies.push(serde_json::from_str::<Value>(text.as_str()).unwrap())
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(
        replies,
        [
            json!({"node": "hello", "outputs": {"greeting": "Hello Ada", "shout": "HELLO ADA"}, "uuid": "u1"}),
            json!({"node": "hello", "outputs": {"greeting": "Hello world", "shout": "HELLO WORLD"}, "uuid": "u2"}),
        ]
    );
}
