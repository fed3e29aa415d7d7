//! A real headless Chromium for the dashboard's tests, driven over
//! WebDriver: Debian's `chromium` and `chromium-driver`, started by the
//! test on a port the OS picks and stopped (with every process it started)
//! when the [`Browser`] is dropped.

use std::io::BufRead as _;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// How long ChromeDriver and a page may take.
const BOUND: Duration = Duration::from_secs(30);

/// A headless Chromium session.
pub struct Browser {
    driver: Child,
    /// The WebDriver client.
    pub client: Client,
    profile: PathBuf,
}

impl Browser {
    /// Starts ChromeDriver and a fresh headless Chromium (its own profile:
    /// no cookies of another test).
    pub async fn start(test: &str) -> Self {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group, so that dropping the browser ends
            // Chromium's processes too.
            .process_group(0)
            .spawn()
            .expect("starting chromedriver: install Debian's chromium and chromium-driver (tests/install-tools does)");
        let stdout = driver.stdout.take().expect("piped stdout");
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').trim().parse::<u16>().ok())
                {
                    let _ = port_tx.send(port);
                }
            }
        });
        let port = port_rx
            .recv_timeout(BOUND)
            .expect("chromedriver said which port it listens on");
        let profile = crate::scratch_dir(&format!("chromium-{test}"));
        let mut options = serde_json::json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = "/usr/bin/chromium".into();
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Self {
            driver,
            client,
            profile,
        }
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("the page loads");
    }

    /// Signs in at `hub` with `token` and waits for the overview.
    pub async fn sign_in(&self, hub: &str, token: &str) {
        self.goto(&format!("{hub}/sign-in")).await;
        self.find("#token").await.send_keys(token).await.unwrap();
        self.find("#sign-in").await.click().await.unwrap();
        self.wait_for("#account").await;
    }

    /// The element `css` (it must be there).
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("no `{css}` on the page: {err}"))
    }

    /// Waits (bounded) for the element `css`.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(BOUND)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("`{css}` never appeared: {err}"))
    }

    /// The text of the element `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// Waits (bounded) until the text of `css` contains `needle`.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + BOUND;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
                && text.contains(needle)
            {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "`{css}` never read `{needle}`; the page: {}",
                self.client.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    /// Ends the session and the browser.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole process group: ChromeDriver and the Chromium it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
