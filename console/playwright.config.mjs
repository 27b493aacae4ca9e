// Playwright against a real `hearth up` (tests/server.mjs starts it) in Debian's chromium.
import { defineConfig } from '@playwright/test';

const chromium = process.env.CHROMIUM || '/usr/bin/chromium';

export default defineConfig({
  testDir: './tests',
  globalSetup: './tests/server.mjs',
  workers: 1,
  fullyParallel: false,
  timeout: 90_000,
  expect: { timeout: 15_000 },
  retries: 0,
  reporter: [['list']],
  outputDir: './test-results',
  use: {
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    launchOptions: {
      executablePath: chromium,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
});
