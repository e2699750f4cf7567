// Logs in through the built-in web client in a real (headless) Chromium and
// saves a screenshot. Usage: node login.mjs <page url> <screenshot path>.
// Exits non-zero if any step does not happen within its deadline.
import { chromium } from "playwright-core";

const [url, shot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 600 } });
  const output = page.locator("#output");
  const type = async (line) => { await page.fill("#input", line); await page.press("#input", "Enter"); };
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
} finally {
  await browser.close();
}
