// Drives the gateway's API pages in Debian's headless Chromium for the
// end-to-end suite, and prints one JSON line per step on stdout:
// {"step": "...", "status": "pass" | "fail" | "gap", "detail": "...", "ms": 12}.
//
// Input comes from the environment: GATEWAY_URL, USER_ID and USER_NAME (a
// user the page must show), CHROMIUM (the executable) and ARTIFACTS (the
// folder for screenshots). The browser may reach the gateway only: every
// other request is aborted here, and Chromium resolves no host name, so
// nothing leaves the machine.

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
// How long GraphiQL gets to render before the page counts as empty.
const GRAPHIQL_RENDER_MS = 5000;

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

const USER_QUERY = 'query ($id: ID!) { user(id: $id) { id name email } }';

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

// Runs one step: `body` returns nothing on success, or {gap: reason}, and
// throws on failure.
async function step(name, body) {
  const started = Date.now();
  try {
    const outcome = await body();
    if (outcome && outcome.gap) {
      report(name, 'gap', outcome.gap, started);
    } else {
      report(name, 'pass', '', started);
    }
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

const blocked = [];
await context.route('**/*', (route) => {
  const url = route.request().url();
  if (new URL(url).origin === gatewayOrigin) {
    return route.continue();
  }
  blocked.push(url);
  return route.abort('blockedbyclient');
});

try {
  await graphiql();
  await apiDocs();
} finally {
  await context.close();
  await rm(userDataDir, { recursive: true, force: true });
}

async function graphiql() {
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('pageerror', (error) => consoleErrors.push(error.message));
  blocked.length = 0;

  const served = await step('GraphiQL: GET /graphql from a browser serves the playground page', async () => {
    const response = await page.goto(`${gatewayUrl}/graphql`, { waitUntil: 'load' });
    const type = response.headers()['content-type'] ?? '';
    if (response.status() !== 200 || !type.startsWith('text/html')) {
      throw new Error(`GET /graphql returned ${response.status()} ${type}`);
    }
    const html = await page.content();
    if (!html.toLowerCase().includes('graphiql')) {
      throw new Error('the page does not mention GraphiQL');
    }
  });

  if (served) {
    await step('GraphiQL: the playground runs a query and shows the user', async () => {
      const rendered = await page
        .waitForSelector('.graphiql-container', { timeout: GRAPHIQL_RENDER_MS })
        .then(() => true, () => false);
      if (!rendered) {
        const outside = [...new Set(blocked)];
        return {
          gap:
            `GraphiQL did not render: it loads its scripts and styles from a CDN, and this machine has no ` +
            `internet access, so the suite blocked ${outside.length} outside request(s): ${outside.join(', ')}` +
            (consoleErrors.length ? `; page errors: ${consoleErrors.join('; ')}` : ''),
        };
      }
      // NOTE: this path runs only where the CDN is reachable, which it is
      // not on the machines this suite was written on.
      const editor = page.locator('.graphiql-query-editor .CodeMirror, .query-editor .CodeMirror').first();
      await editor.click();
      await page.keyboard.press('Control+A');
      await page.keyboard.type(`{ user(id: "${userId}") { name } }`);
      await page.locator('.graphiql-execute-button, .execute-button').first().click();
      await page.locator('.graphiql-response, .result-window').getByText(userName).first().waitFor();
    });

    await step('GraphQL: a query sent from the /graphql page returns the user', async () => {
      const body = await page.evaluate(
        async ({ query, variables }) => {
          const response = await fetch('/graphql', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ query, variables }),
          });
          return response.json();
        },
        { query: USER_QUERY, variables: { id: userId } },
      );
      if (body?.data?.user?.name !== userName) {
        throw new Error(`expected user ${userName}, got ${JSON.stringify(body)}`);
      }
    });
  }
  await page.screenshot({ path: join(artifacts, 'graphiql.png'), fullPage: true });
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
