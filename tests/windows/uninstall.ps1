#Requires -RunAsAdministrator
<#
.SYNOPSIS
  Unloads wskudp, removes its driver packages and its Driver Verifier settings (idempotent).
.DESCRIPTION
  1. sc stop wskudp and wait until it is STOPPED (fails, naming the cause, if a handle is
     still open);
  2. pnputil /delete-driver <oemNN.inf> /uninstall for every wskudp package in the store;
  3. Driver Verifier: if wskudp.sys is the only verified driver, verifier /reset; if others
     are verified too, wskudp.sys is taken out of the list and the rest left as they are;
     KMDF's verifier values (the service's Parameters\Wdf VerifierOn, TrackHandles) are
     removed first, so nothing is left should the service key survive;
  4. the wskudp service is confirmed gone (a primitive driver's /uninstall deletes it).
  The low-resources phase's 'verifier /dif 19 /now' lives in memory only, not in the registry
  this script reads: it ends at the next reboot, so reboot after uninstalling if that phase ran.
  Test signing is left on unless -DisableTestSigning is given.
  Exit codes: 0 done; 3010 done, a reboot completes it; anything else failed.
  NOT RUN by this project: no Windows machine was available to it.
#>
param([switch] $DisableTestSigning)

. (Join-Path $PSScriptRoot 'common.ps1')

Stop-Driver
Set-KmdfVerifier $false
$rebootNeeded = $false
$packages = @(Get-DriverPackages)
foreach ($package in $packages) {
    $code = Invoke-Native pnputil.exe @('/delete-driver', $package.Driver, '/uninstall') `
        -Success @(0, $ERROR_SUCCESS_REBOOT_REQUIRED)
    if ($code -eq $ERROR_SUCCESS_REBOOT_REQUIRED) { $rebootNeeded = $true }
}

if ($packages.Count -gt 0 -and -not $rebootNeeded -and $null -ne (Get-DriverService)) {
    throw "The $ServiceName service is still installed after pnputil /uninstall removed its package."
}

$targets = Get-VerifierTargets
if ($targets -icontains $DriverImage) {
    $others = @($targets | Where-Object { $_ -ine $DriverImage })
    if ($others.Count -eq 0) {
        # verifier.exe documents no exit codes; 0 and 2 (saved, takes effect at reboot) are
        # taken as success, and the registry is checked below either way.
        Invoke-Native verifier.exe @('/reset') -Success @(0, 2) | Out-Null
    } else {
        # Keep the other drivers' verification: the same list without wskudp.sys.
        $key = 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager\Memory Management'
        Set-ItemProperty $key -Name VerifyDrivers -Value ($others -join ' ')
    }
    if ((Get-VerifierTargets) -icontains $DriverImage) {
        throw 'wskudp.sys is still in the Driver Verifier settings (VerifyDrivers).'
    }
    $rebootNeeded = $true
}

if ($DisableTestSigning) {
    Invoke-Native bcdedit.exe @('/set', '{current}', 'testsigning', 'off') | Out-Null
    $rebootNeeded = $true
}

if ($rebootNeeded) {
    Write-Warning 'Reboot to finish (Driver Verifier, test signing or pnputil changes).'
    exit $ERROR_SUCCESS_REBOOT_REQUIRED
}
exit 0
