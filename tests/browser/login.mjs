// Logs in through the built-in web client in a real (headless) Chromium,
// reloads the page and checks the player is still logged in and in
// character, then checks a second tab is a session of its own; saves a
// screenshot after the login and one after the reload.
// Usage: node login.mjs <page url> <login screenshot> <reload screenshot>.
// Exits non-zero if any step does not happen within its deadline.
import { chromium } from "playwright-core";

const [url, shot, reloadShot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 600 } });
  const page = await context.newPage();
  const output = page.locator("#output");
  const type = async (line) => { await page.fill("#input", line); await page.press("#input", "Enter"); };
  const messagesWith = (text) => page.evaluate(
    (t) => [...document.querySelectorAll("#output .msg")].filter((d) => d.textContent.includes(t)).length,
    text);
  await page.goto(url);
  await output.getByText("create <username> <password>").first().waitFor({ timeout: 15000 });
  await type("create Browser browser-pass-1");
  await output.getByText("was created").waitFor({ timeout: 15000 });
  await type("connect Browser browser-pass-1");
  await output.getByText("You become Browser.").waitFor({ timeout: 15000 });
  await type("look");
  // The room shows twice: once on login, once for `look`.
  await page.waitForFunction(
    () => [...document.querySelectorAll("#output .msg")].filter((d) => d.textContent.includes("Limbo")).length >= 2,
    null, { timeout: 15000 });
  await page.screenshot({ path: shot });
  console.log("browser login ok");

  // F5: the page comes back to its session, logged in and in character.
  await page.reload();
  await output.getByText("(Reconnected: you are back in your session.)").waitFor({ timeout: 15000 });
  await page.waitForFunction(() => document.title.endsWith("(logged in)"), null, { timeout: 15000 });
  await type("look");
  await output.getByText("Limbo").first().waitFor({ timeout: 15000 });
  await type("say reloaded and still here");
  await output.getByText("You say, \"reloaded and still here\"").waitFor({ timeout: 15000 });
  if (await messagesWith("create <username> <password>") !== 0) {
    throw new Error("the reloaded page shows the connection screen");
  }
  await page.screenshot({ path: reloadShot });
  console.log("browser reload ok");

  // A second tab has no token of its own yet: it is a new session, and the
  // first tab keeps its own.
  const other = await context.newPage();
  await other.goto(url);
  await other.locator("#output").getByText("create <username> <password>").first()
    .waitFor({ timeout: 15000 });
  await type("say still mine");
  await output.getByText("You say, \"still mine\"").waitFor({ timeout: 15000 });
  console.log("second tab ok");
} finally {
  await browser.close();
}
