// /signin/: choose a demo user (when the server has dev login on), paste a token, or sign in
// with the configured OpenID Connect provider.
import { Suspense } from "react";
import { SignInPanel } from "./SignInPanel";

export default function SignInPage() {
  return (
    <Suspense fallback={<p className="muted">Loading…</p>}>
      <SignInPanel />
    </Suspense>
  );
}
