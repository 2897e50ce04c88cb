<#
.SYNOPSIS
  Installs the packaged wskudp KMDF driver on a Windows test VM.
.DESCRIPTION
  Written to the conventions of windows-drivers-rs and Windows-rust-driver-samples
  (devgen + pnputil, test signing). NOT RUN by this project: no Windows machine was available.
  Run from an elevated PowerShell on the test VM, with the package produced by `cargo make kmdf`
  (target\<profile>\wskudp_package) copied to -Package.
#>
param(
    [string]$Package = ".\target\release\wskudp_package"
)
$ErrorActionPreference = "Stop"

# Test-signed drivers load only with test signing on (takes effect after a reboot).
$bcd = bcdedit /enum "{current}" | Out-String
if ($bcd -notmatch "testsigning\s+Yes") {
    bcdedit /set testsigning on | Out-Null
    Write-Warning "Test signing was off; it is now on. Reboot, then run this script again."
    exit 1
}

# Trust the package's test certificate (created by the WDK packaging flow).
$cer = Join-Path $Package "WDRLocalTestCert.cer"
if (Test-Path $cer) {
    certutil -addstore -f root $cer | Out-Null
    certutil -addstore -f TrustedPublisher $cer | Out-Null
}

# A root-enumerated device for the INF's hardware id, then the driver package.
$devgen = Get-Command devgen.exe -ErrorAction SilentlyContinue
if (-not $devgen) { throw "devgen.exe (WDK tools) is not on PATH" }
& devgen.exe /add /bus ROOT /hardwareid "Root\wskudp"
pnputil.exe /add-driver (Join-Path $Package "wskudp.inf") /install
if ($LASTEXITCODE -ne 0) { throw "pnputil failed with $LASTEXITCODE" }

# Smoke check through the device backend.
wskudp.exe --backend device info
