// TOTP codes for the tests, computed by the otpauth library (RFC 6238: SHA-1, 6 digits,
// 30-second steps, the parameters phigate enrolls), so the server's TOTP is checked
// against an implementation others wrote.

import * as OTPAuth from 'otpauth';

export const PERIOD_S = 30;

export function totpFor(secretBase32) {
  return new OTPAuth.TOTP({
    secret: OTPAuth.Secret.fromBase32(secretBase32),
    algorithm: 'SHA1',
    digits: 6,
    period: PERIOD_S,
  });
}

// The current time step (RFC 6238 §4.2 T).
export function currentStep(nowMs = Date.now()) {
  return Math.floor(nowMs / 1000 / PERIOD_S);
}

// The code of time step `step`.
export function codeForStep(secretBase32, step) {
  return totpFor(secretBase32).generate({ timestamp: step * PERIOD_S * 1000 });
}

// Hands out codes of strictly increasing time steps, starting at the current one, as a
// user with several devices' worth of patience would: phigate accepts ±1 step and each step
// once, so the first code is for the current step, the next for the following step
// (accepted as drift), and any later one waits until it is within one step of now.
export class TotpSequence {
  constructor(secretBase32) {
    this.secret = secretBase32;
    this.lastStep = null;
  }

  // Resolves {code, step}.
  async next() {
    let step = this.lastStep === null ? currentStep() : Math.max(currentStep(), this.lastStep + 1);
    // More than one step ahead of the server clock would be refused: wait for time to catch up.
    while (step > currentStep() + 1) {
      const wait = (currentStep() + 1) * PERIOD_S * 1000 - Date.now() + 50;
      await new Promise((r) => setTimeout(r, wait));
      step = Math.max(currentStep(), this.lastStep + 1);
    }
    this.lastStep = step;
    return { code: codeForStep(this.secret, step), step };
  }
}
