// Drives the gateway's API pages in Debian's headless Chromium for the
// end-to-end suite, and prints one JSON line per step on stdout:
// {"step": "...", "status": "pass" | "fail", "detail": "...", "ms": 12}.
//
// Input comes from the environment: GATEWAY_URL, USER_ID and USER_NAME (a
// user the pages must show), CHROMIUM (the executable) and ARTIFACTS (the
// folder for screenshots). The browser may reach the gateway only: every
// other request is aborted here, and Chromium resolves no host name, so
// nothing leaves the machine. The gateway serves both pages and all their
// files itself, so an aborted request fails the run.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const gatewayUrl = requireEnv('GATEWAY_URL');
const userId = requireEnv('USER_ID');
const userName = requireEnv('USER_NAME');
const executablePath = requireEnv('CHROMIUM');
const artifacts = requireEnv('ARTIFACTS');
const gatewayOrigin = new URL(gatewayUrl).origin;

// How long one page action may take, in milliseconds.
const ACTION_TIMEOUT_MS = 15000;

const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  // Every host name fails to resolve; the gateway is addressed by IP.
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
];

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`environment variable ${name} is missing`);
    process.exit(2);
  }
  return value;
}

function report(step, status, detail, started) {
  const ms = Date.now() - started;
  console.log(JSON.stringify({ step, status, detail: detail ?? '', ms }));
}

// Runs one step: `body` throws on failure.
async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    report(name, 'pass', '', started);
    return true;
  } catch (error) {
    report(name, 'fail', String(error && error.message ? error.message : error), started);
    return false;
  }
}

const userDataDir = await mkdtemp(join(tmpdir(), 'lintas-e2e-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: CHROMIUM_FLAGS,
  timeout: ACTION_TIMEOUT_MS,
});
context.setDefaultTimeout(ACTION_TIMEOUT_MS);

// URLs of the aborted requests to other origins. `blocked` is cleared for
// each page, and `allBlocked` covers the whole run.
const blocked = [];
const allBlocked = [];
await context.route('**/*', (route) => {
  const url = route.request().url();
  if (new URL(url).origin === gatewayOrigin) {
    return route.continue();
  }
  blocked.push(url);
  allBlocked.push(url);
  return route.abort('blockedbyclient');
});

try {
  await graphiql();
  await apiDocs();
  await step('Browser: no request to another origin was aborted during the run', async () => {
    if (allBlocked.length > 0) {
      throw new Error(`aborted requests: ${[...new Set(allBlocked)].join(', ')}`);
    }
  });
} finally {
  await context.close();
  await rm(userDataDir, { recursive: true, force: true });
}

async function graphiql() {
  const page = await context.newPage();
  // Console errors (a CSP violation is one), script errors and failed
  // responses of the page.
  const problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} from ${response.url()}`);
  });
  blocked.length = 0;
  const checkClean = () => {
    if (blocked.length > 0) {
      throw new Error(`the page requested outside URLs: ${[...new Set(blocked)].join(', ')}`);
    }
    if (problems.length > 0) {
      throw new Error(problems.join('; '));
    }
  };

  const served = await step('GraphiQL: GET /graphql from a browser serves the playground page with a CSP', async () => {
    const response = await page.goto(`${gatewayUrl}/graphql`, { waitUntil: 'load' });
    const headers = response.headers();
    const type = headers['content-type'] ?? '';
    if (response.status() !== 200 || !type.startsWith('text/html')) {
      throw new Error(`GET /graphql returned ${response.status()} ${type}`);
    }
    const policy = headers['content-security-policy'] ?? '';
    if (!policy.includes("script-src 'self'")) {
      throw new Error(`the page's Content-Security-Policy does not limit scripts: "${policy}"`);
    }
  });

  const rendered =
    served &&
    (await step("GraphiQL: the editor renders from the gateway's own files, with nothing blocked", async () => {
      await page.locator('.graphiql-container .graphiql-query-editor .CodeMirror').waitFor();
      checkClean();
    }));

  if (rendered) {
    await step('GraphiQL: a query typed into the editor and run shows the user', async () => {
      const query = `{ user(id: "${userId}") { name } }`;
      await page.locator('.graphiql-query-editor .CodeMirror').click();
      await page.keyboard.press('Control+A');
      await page.keyboard.press('Delete');
      // CodeMirror closes brackets and quotes as they are typed, and steps
      // over them when the closing one is typed, so the text comes out as typed.
      await page.keyboard.type(query);
      const typed = await page.evaluate(
        () => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue(),
      );
      if (typed !== query) {
        throw new Error(`the editor contains ${JSON.stringify(typed)}, not ${JSON.stringify(query)}`);
      }
      await page.locator('button.graphiql-execute-button').click();
      const resultHandle = await page.waitForFunction(() => {
        const text = document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '';
        return text.trim().startsWith('{') && text;
      });
      const resultBody = JSON.parse(await resultHandle.jsonValue());
      if (resultBody?.data?.user?.name !== userName) {
        throw new Error(`the result pane shows ${JSON.stringify(resultBody)}, not user ${userName}`);
      }
      if (!(await page.locator('.graphiql-response').getByText(`"${userName}"`).isVisible())) {
        throw new Error(`the result pane contains user ${userName} but does not show it`);
      }
      checkClean();
    });
    await page.screenshot({ path: join(artifacts, 'graphiql.png'), fullPage: true });

    // The dialog makes GraphiQL add a style element, which the CSP allows
    // only with the page's nonce.
    await step('GraphiQL: the settings dialog opens with no CSP violation', async () => {
      await page.locator('button[aria-label="Open settings dialog"]').click();
      const dialog = page.getByRole('dialog');
      await dialog.getByText('Settings', { exact: true }).waitFor();
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      checkClean();
    });
  } else {
    await page.screenshot({ path: join(artifacts, 'graphiql.png'), fullPage: true });
  }
  await page.close();
}

async function apiDocs() {
  const page = await context.newPage();
  blocked.length = 0;

  await step('API docs: Swagger UI at /api/docs loads with no outside request', async () => {
    await page.goto(`${gatewayUrl}/api/docs`, { waitUntil: 'load' });
    await page.locator('.swagger-ui .opblock').first().waitFor();
    if (blocked.length > 0) {
      throw new Error(`the page requested outside URLs: ${[...new Set(blocked)].join(', ')}`);
    }
  });

  await step('API docs: "Try it out" on GET /api/v1/users/{id} shows the user', async () => {
    const operation = page.locator('.opblock-get', {
      has: page.locator('.opblock-summary-path[data-path="/api/v1/users/{id}"]'),
    });
    await operation.locator('.opblock-summary').first().click();
    await operation.locator('button.try-out__btn').click();
    await operation.locator('tr[data-param-name="id"] input').fill(userId);
    await operation.locator('button.execute').click();
    const live = operation.locator('.live-responses-table');
    await live.waitFor();
    const requestUrl = (await operation.locator('.request-url pre').first().innerText()).trim();
    const status = (await live.locator('.response .response-col_status').first().innerText()).trim();
    const responseText = (await live.locator('.response .response-col_description').first().innerText()).trim();
    if (status !== '200' || !responseText.includes(userName)) {
      throw new Error(
        `Swagger UI sent GET ${requestUrl} and shows status ${status}, not user ${userName}: ${responseText.slice(0, 300)}`,
      );
    }
    await operation.scrollIntoViewIfNeeded();
  });

  await page.screenshot({ path: join(artifacts, 'api-docs.png'), fullPage: true });
  await page.close();
}
