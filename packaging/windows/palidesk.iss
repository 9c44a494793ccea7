; Inno Setup 6 script for PaliDesk: a per-user install (no administrator rights), a
; Start-menu shortcut, an optional desktop shortcut, and an uninstaller under
; Settings > Apps. Built by packaging/windows/build.ps1, which passes:
;   ISCC /DAppVersion=0.1.0 /DVariant=cpu /DSourceDir=<dist\palidesk> /DIconFile=<.ico>
;        /O<dist> packaging\windows\palidesk.iss
; Output: PaliDesk-<version>-windows-x64-<variant>-setup.exe
; Settings, history and models live in the user's AppData and survive an uninstall.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef Variant
  #define Variant "cpu"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\palidesk"
#endif
#ifndef IconFile
  #define IconFile "..\..\build\icons\palidesk.ico"
#endif

[Setup]
; One AppId for every variant: installing the CUDA build replaces the CPU build.
AppId={{6D1C7A52-3E8B-4F0A-9B2D-5C4E8F7A1B30}
AppName=PaliDesk
AppVersion={#AppVersion}
AppVerName=PaliDesk {#AppVersion} ({#Variant} build)
AppPublisher=PaliDesk developers
DefaultDirName={autopf}\PaliDesk
DefaultGroupName=PaliDesk
DisableProgramGroupPage=yes
; Per user, into %LOCALAPPDATA%\Programs\PaliDesk: no UAC prompt. The dialog lets an
; administrator choose an all-users install instead.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputBaseFilename=PaliDesk-{#AppVersion}-windows-x64-{#Variant}-setup
SetupIconFile={#IconFile}
UninstallDisplayIcon={app}\PaliDesk.exe
UninstallDisplayName=PaliDesk ({#Variant} build)
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes

[Languages]
Name: "english"; MessagesFile: "compiler:Default.isl"

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\PaliDesk"; Filename: "{app}\PaliDesk.exe"; Comment: "PaliGemma 2 on your desktop"
Name: "{autodesktop}\PaliDesk"; Filename: "{app}\PaliDesk.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\PaliDesk.exe"; Description: "{cm:LaunchProgram,PaliDesk}"; Flags: nowait postinstall skipifsilent
