// Drives the gateway's API pages in Debian's headless Chromium for the
// end-to-end suite, and prints one JSON line per step on stdout:
// {"step": "...", "status": "pass" | "fail", "detail": "...", "ms": 12}.
//
// Input comes from the environment: GATEWAY_URL, USER_ID and USER_NAME (a
// user the pages must show), USER_TOKEN (that user's bearer token, which
// the script enters into each page as a person would), CHROMIUM (the
// executable) and ARTIFACTS (the folder for screenshots). The browser may
// reach the gateway only: every
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
const userToken = requireEnv('USER_TOKEN');
const executablePath = requireEnv('CHROMIUM');
const artifacts = requireEnv('ARTIFACTS');
const gatewayOrigin = new URL(gatewayUrl).origin;

// How long one page action may take, in milliseconds.
const ACTION_TIMEOUT_MS = 15000;

// GraphiQL 3.9 takes in an editor change (new headers, the operation name
// of a new query) 100 ms after the last keystroke, and a request sent
// before then uses the old values. After typing, the script waits this
// long, in milliseconds, as a person would before clicking.
const GRAPHIQL_SETTLE_MS = 1000;

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
  // responses of the page. Until the token is in the Headers editor,
  // GraphiQL's schema request carries the placeholder token, so its 401 and
  // the console error that Chromium logs for it are expected and kept apart.
  const problems = [];
  const unauthenticated = [];
  let tokenEntered = false;
  const graphqlUrl = `${gatewayUrl}/graphql`;
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const text = message.text();
    if (!tokenEntered && text.includes('status of 401') && message.location().url === graphqlUrl) {
      unauthenticated.push(`console error: ${text}`);
    } else {
      problems.push(`console error: ${text}`);
    }
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('response', (response) => {
    if (response.status() < 400) return;
    if (!tokenEntered && response.status() === 401 && response.url() === graphqlUrl) {
      unauthenticated.push(`401 from ${response.url()}`);
    } else {
      problems.push(`${response.status()} from ${response.url()}`);
    }
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

  // GraphiQL sends its schema request as soon as it renders.
  const firstSchemaResponse = page.waitForResponse(
    (response) => response.url() === graphqlUrl && response.request().method() === 'POST',
  );
  const served = await step('GraphiQL: GET /graphql from a browser serves the playground page with a CSP', async () => {
    const response = await page.goto(graphqlUrl, { waitUntil: 'load' });
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

  const schemaLoaded =
    rendered &&
    (await step('GraphiQL: before a token is entered, the schema request gets 401 and the page shows UNAUTHENTICATED', async () => {
      const response = await firstSchemaResponse;
      if (response.status() !== 401) {
        throw new Error(`the schema request with the placeholder token returned ${response.status()}, expected 401`);
      }
      const body = await response.json();
      if (body?.errors?.[0]?.extensions?.code !== 'UNAUTHENTICATED') {
        throw new Error(`the 401 body is ${JSON.stringify(body)}, expected extensions.code UNAUTHENTICATED`);
      }
      if (!(response.headers()['www-authenticate'] ?? '').startsWith('Bearer')) {
        throw new Error('the 401 has no Bearer WWW-Authenticate challenge');
      }
      // GraphiQL retries once without subscriptions, then shows the error in
      // the response pane; waiting for it keeps that retry's 401 before the
      // token is entered.
      await page.waitForFunction(() =>
        (document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror.getValue() ?? '').includes('UNAUTHENTICATED'),
      );
    })) &&
    (await step("GraphiQL: the user's token typed into the Headers editor loads the schema", async () => {
      const headersEditor = page.locator('.graphiql-editor-tool[aria-label="Headers"] .graphiql-editor:not(.hidden) .CodeMirror');
      const prefilled = await headersEditor.evaluate((editor) => editor.CodeMirror.getValue());
      if (!prefilled.includes('PASTE-YOUR-TOKEN-HERE')) {
        throw new Error(`the Headers editor starts with ${JSON.stringify(prefilled)}, not the token placeholder`);
      }
      const headers = JSON.stringify({ Authorization: `Bearer ${userToken}` });
      await headersEditor.click();
      await page.keyboard.press('Control+A');
      await page.keyboard.press('Delete');
      // Inserted as one piece, as a paste would, so CodeMirror adds no
      // closing brackets or quotes.
      await page.keyboard.insertText(headers);
      const entered = await headersEditor.evaluate((editor) => editor.CodeMirror.getValue());
      if (entered !== headers) {
        throw new Error(`the Headers editor contains ${JSON.stringify(entered)}, not the typed headers`);
      }
      tokenEntered = true;
      await page.waitForTimeout(GRAPHIQL_SETTLE_MS);

      const schemaResponse = page.waitForResponse(
        (response) => response.url() === graphqlUrl && response.request().method() === 'POST',
      );
      await page.locator('button[aria-label="Re-fetch GraphQL schema"]').click();
      const response = await schemaResponse;
      const sent = response.request().headers()['authorization'];
      if (sent !== `Bearer ${userToken}`) {
        throw new Error(`the schema request sent Authorization ${JSON.stringify(sent)}, not the entered token`);
      }
      const body = await response.json();
      if (response.status() !== 200 || !body?.data?.__schema) {
        throw new Error(`the schema request returned ${response.status()}: ${JSON.stringify(body).slice(0, 300)}`);
      }
      if (unauthenticated.length === 0) {
        throw new Error('no 401 was seen before the token was entered');
      }
      checkClean();
    }));

  if (schemaLoaded) {
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
      await page.waitForTimeout(GRAPHIQL_SETTLE_MS);
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

  const authorized = await step("API docs: the user's token entered under Authorize is accepted", async () => {
    await page.locator('.auth-wrapper button.authorize').click();
    const dialog = page.locator('.dialog-ux .modal-ux');
    await dialog.locator('#auth-bearer-value').fill(userToken);
    await dialog.getByRole('button', { name: 'Apply credentials' }).click();
    await dialog.getByRole('button', { name: 'Remove authorization' }).waitFor();
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'detached' });
  });

  await step('API docs: "Try it out" on GET /api/v1/users/{id} sends the token and shows the user', async () => {
    if (!authorized) {
      throw new Error('no token was entered under Authorize');
    }
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
    const curl = await operation.locator('.curl-command').first().innerText();
    if (!curl.includes(`Authorization: Bearer ${userToken}`)) {
      throw new Error(`the request Swagger UI shows sends no bearer token: ${curl.slice(0, 300)}`);
    }
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
