//! A real SMTP server on loopback (mailin-embedded) that keeps what it receives.

use std::io;
use std::net::{IpAddr, TcpListener};
use std::sync::{Arc, Mutex};

use mailin_embedded::{response, Handler, Response, Server, SslConfig};

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
            let mut server = Server::new(handler);
            server
                .with_name("smtp.test")
                .with_ssl(SslConfig::None)
                .expect("no TLS")
                .with_tcp_listener(listener);
            let _ = server.serve();
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
