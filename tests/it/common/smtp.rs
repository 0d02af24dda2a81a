//! A real SMTP server on loopback that keeps what it receives: mailin's SMTP session (the
//! protocol engine mailin-embedded runs) over plain TCP, one thread per connection. The
//! session is mailin's; this file only moves lines between the socket and it (mailin-embedded
//! itself cannot be built without its TLS feature, which would build aws-lc-sys for a test
//! server that never speaks TLS).

use std::io::{self, BufRead as _, BufReader, Write as _};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use mailin::{response, Action, Handler, Response, SessionBuilder};

/// One received email: envelope recipients and the raw message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub raw: Vec<u8>,
}

#[derive(Clone)]
struct Collector {
    mailbox: Arc<Mutex<Vec<Mail>>>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collector {
    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        response::OK
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let mail = Mail {
            to: std::mem::take(&mut self.to),
            raw: std::mem::take(&mut self.data),
        };
        self.mailbox.lock().unwrap().push(mail);
        response::OK
    }
}

/// A running SMTP server; it serves until the test process exits.
pub struct SmtpServer {
    pub port: u16,
    mailbox: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind SMTP port");
        let port = listener.local_addr().unwrap().port();
        let mailbox = Arc::new(Mutex::new(Vec::new()));
        let handler = Collector {
            mailbox: Arc::clone(&mailbox),
            to: Vec::new(),
            data: Vec::new(),
        };
        std::thread::spawn(move || {
            let sessions = SessionBuilder::new("smtp.test");
            for stream in listener.incoming().flatten() {
                let (sessions, handler) = (sessions.clone(), handler.clone());
                std::thread::spawn(move || {
                    let _ = serve_connection(stream, &sessions, handler);
                });
            }
        });
        Self { port, mailbox }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mailbox.lock().unwrap().clone()
    }

    /// The `[smtp]` section pointing at this server.
    pub fn config(&self) -> String {
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"流失提醒 <alerts@example.com>\"\ntimeout = \"5s\"\n",
            self.port
        )
    }
}

/// One SMTP conversation: the greeting, then each line to mailin's session and its answer back.
fn serve_connection(
    stream: TcpStream,
    sessions: &SessionBuilder,
    handler: Collector,
) -> io::Result<()> {
    let remote = stream.peer_addr()?.ip();
    let mut session = sessions.build(remote, handler);
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    session.greeting().write_to(&mut writer)?;
    let mut line = Vec::with_capacity(80);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let answer = session.process(&line);
        match answer.action {
            Action::NoReply => {}
            Action::Reply => answer.write_to(&mut writer)?,
            Action::Close | Action::UpgradeTls => {
                answer.write_to(&mut writer)?;
                writer.flush()?;
                return Ok(());
            }
        }
        writer.flush()?;
    }
}
